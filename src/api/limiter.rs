//! The client-side rate limiter: charter's calls stay within a share of the instance's
//! requests per minute, so that the instance's 429s are rare instead of being the flow control.
//! One limiter is shared (it is a handle: clones are the same limiter) by every call of one
//! command — the reads of the observation and the apply that follows — so that they spend one
//! minute's budget together, as the instance counts it.
//!
//! # The window
//!
//! A limit of `L` calls a minute lets a whole minute's allowance through at once, whether the
//! instance counts over a sliding minute, over fixed minutes, or with a token bucket as large as
//! the minute's allowance. So the limiter lets calls out as fast as they come until the share of
//! the limit, `C = ⌊share × L⌋` (at least one), is spent in the window, then holds the next call
//! until the window has rolled past enough of them. N calls then take about
//! `(⌈N / C⌉ − 1)` minutes and the time to send the last `C` or fewer, where an evenly paced
//! limiter takes `N / C` minutes.
//!
//! The bound it keeps is on what the instance can count: a call is let out only while fewer
//! than `C` calls are in flight or were answered less than a window ago ([`Permit`]s say when a
//! call is answered). The instance counts a call at some moment between the call's leaving and
//! its answer, so for any window of the instance's clock, the last call it counts there was let
//! out when every other call counted there was in flight or answered within the window before:
//! no sliding window, on any clock, ever holds more than `C` of charter's calls, whatever the
//! latency. What the share leaves unused (`L − C`) is the room for other clients of the same
//! token.
//!
//! # A 429 all the same
//!
//! A 429 means that the instance counts differently: it refuses bursts (a bucket smaller than
//! its minute), another client spends the same budget, or the limit is lower than configured —
//! or none is configured ([`Limiter::adaptive`]). The limiter then falls back to smooth pacing,
//! for good: calls leave evenly, never in a burst, at [`EVEN_PACE`] of the limit in force — the
//! rate the instance accepts, which the 429s have already cut to what others leave, so the
//! share is not taken off it again — and never more than that limit in any window. The limit in
//! force becomes
//!
//! - the first time, for a configured limit: the same limit — a burst may have been refused,
//!   not the rate; if another client fills the window, the next 429 says so;
//! - otherwise: what the instance accepted in the window before (the calls let out, less the
//!   429s and the calls still unanswered), never above a configured limit nor below half of it;
//!   without a configured limit, at least [`ADAPTIVE_FLOOR`] — a smaller estimate says more
//!   about someone else's calls than about the limit.
//!
//! Paced at exactly the limit, a token bucket refilled at that rate never fills again: a call
//! that reaches it a little early after one that came late is refused. [`EVEN_PACE`] leaves the
//! bucket one call's worth of slack every fifty calls.
//!
//! Only a call let out after the last change teaches anything: the 429s of the calls that were
//! already on their way when the limit changed say nothing about the new one. Each window
//! without a change gives a tenth of the configured limit (without one: of the highest
//! estimate) back.
//!
//! So no sliding window holds more than the share of the limit until the first 429, and never
//! more than the limit (the configured one, or the highest estimate) after it.
//!
//! The window is the instance's: 60 s for Make. [`Limiter::with_window`] shortens it, with the
//! sandbox's, for tests that cannot wait a real minute.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Make counts calls per minute.
pub const MINUTE: Duration = Duration::from_secs(60);

/// Without a configured limit, the lowest limit a 429 makes the limiter assume, per minute:
/// Make's smallest plan allows 60.
pub const ADAPTIVE_FLOOR: f64 = 60.0;

/// The share of the instance's limit charter uses when nothing else is said, in percent: each
/// window lets this much of the limit out at once; the rest is room for other clients of the
/// token.
pub const DEFAULT_SHARE_PERCENT: u32 = 95;

/// [`DEFAULT_SHARE_PERCENT`] as a fraction.
pub const DEFAULT_SHARE: f64 = DEFAULT_SHARE_PERCENT as f64 / 100.0;

/// After a 429, calls go evenly at this share of the limit in force (see the module
/// documentation): enough below it that a token bucket refilled at that rate keeps some slack.
pub const EVEN_PACE: f64 = 0.98;

/// At most this many calls are remembered (far above any `apiLimit`): the limiter's memory
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
    /// The calls charter lets out in any minute: the share of the limit, at least one.
    pub fn allowance(&self) -> u32 {
        let share = valid_share(self.share);
        // At most the limit itself, a `u32`.
        allowance(f64::from(self.per_minute.max(1)), share) as u32
    }
}

fn valid_share(share: f64) -> f64 {
    if share.is_finite() && share > 0.0 {
        share.min(1.0)
    } else {
        1.0
    }
}

/// `⌊share × limit⌋`, at least one.
fn allowance(limit: f64, share: f64) -> usize {
    // A float of at most a few million calls converts without loss; larger ones saturate.
    ((limit * share).floor() as usize).max(1)
}

/// The time between two evenly paced calls at [`EVEN_PACE`] of `limit` calls per `window`.
fn interval(limit: f64, window: Duration) -> Duration {
    let rate = limit.max(f64::MIN_POSITIVE) * EVEN_PACE / window.as_secs_f64().max(1e-3);
    Duration::try_from_secs_f64(1.0 / rate).unwrap_or(window)
}

/// The rate limiter shared by every call of a command (clones are the same limiter);
/// [`Limiter::off`] lets everything through.
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    budget: Mutex<Budget>,
    /// Callers wait their turn here, first come first served: only the first waits for the
    /// budget.
    queue: tokio::sync::Mutex<()>,
    /// Told when a call is answered: a caller waiting for the calls in flight may go.
    answered: Notify,
}

/// How calls leave.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// The share of the limit at once, then wait for the window to roll.
    Window,
    /// One every interval (after a 429), at most the limit in a window.
    Smooth,
}

#[derive(Debug)]
struct Budget {
    /// The instance's counting window.
    window: Duration,
    /// The share of the limit a window may hold in [`Mode::Window`].
    share: f64,
    mode: Mode,
    /// The configured limit per window; `None` for an adaptive limiter.
    configured: Option<f64>,
    /// The most the limit in force may come back to: the configured limit, or the highest
    /// estimate of an adaptive one (`None` before its first 429).
    ceiling: Option<f64>,
    /// The limit in force, per window; `None` while nothing limits (an adaptive limiter before
    /// its first 429).
    limit: Option<f64>,
    /// Between two calls, in smooth mode.
    interval: Duration,
    /// The earliest the next call may leave, in smooth mode.
    next: Instant,
    /// Calls let out and not answered yet.
    in_flight: usize,
    /// When the calls of the last window were answered, oldest first.
    answered: VecDeque<Instant>,
    /// When the calls of the last window were let out, oldest first.
    sent: VecDeque<Instant>,
    /// When the 429s of the last window came.
    refused: VecDeque<Instant>,
    /// When the limit or the mode last changed (a 429, or a step back up).
    changed: Instant,
    /// Calls let out, ever; a call's number is how many left before it.
    calls: u64,
    /// The number of the first call let out after the last 429 that changed the limit.
    learned: u64,
}

/// What a caller does next.
enum Turn {
    /// The call leaves; its number.
    Go(u64),
    /// Wait until then and ask again.
    Until(Instant),
    /// Wait for a call in flight to be answered.
    Answer,
}

impl Budget {
    fn new(configured: Option<f64>, share: f64) -> Budget {
        let now = Instant::now();
        let mut budget = Budget {
            window: MINUTE,
            share: valid_share(share),
            mode: Mode::Window,
            configured,
            ceiling: configured,
            limit: configured,
            interval: Duration::ZERO,
            next: now,
            in_flight: 0,
            answered: VecDeque::new(),
            sent: VecDeque::new(),
            refused: VecDeque::new(),
            changed: now,
            calls: 0,
            learned: 0,
        };
        budget.pace();
        budget
    }

    fn pace(&mut self) {
        self.interval = match (self.mode, self.limit) {
            (Mode::Smooth, Some(limit)) => interval(limit, self.window),
            _ => Duration::ZERO,
        };
    }

    /// Forgets what is a window old.
    fn forget(&mut self, now: Instant) {
        for times in [&mut self.answered, &mut self.sent, &mut self.refused] {
            while times
                .front()
                .is_some_and(|&at| now.saturating_duration_since(at) >= self.window)
            {
                times.pop_front();
            }
        }
    }

    /// A window without a change gives back a tenth of the ceiling.
    fn recover(&mut self, now: Instant) {
        let (Some(limit), Some(ceiling)) = (self.limit, self.ceiling) else {
            return;
        };
        if limit >= ceiling || now.saturating_duration_since(self.changed) < self.window {
            return;
        }
        self.limit = Some((limit + ceiling / 10.0).min(ceiling));
        self.changed = now;
        self.pace();
    }

    /// Whether a call may leave now, and lets it out if so (its number with it).
    fn take(&mut self, now: Instant) -> Turn {
        self.forget(now);
        self.recover(now);
        if let Some(limit) = self.limit {
            if self.mode == Mode::Smooth && self.next > now {
                return Turn::Until(self.next);
            }
            let counted = self.in_flight + self.answered.len();
            let allowance = match self.mode {
                Mode::Window => allowance(limit, self.share),
                Mode::Smooth => allowance(limit, 1.0),
            };
            if counted >= allowance {
                // This many answered calls must leave the window first (the oldest ones); when
                // the calls in flight alone fill it, one of them must be answered.
                let ageing = counted - allowance + 1;
                return match self.answered.get(ageing - 1) {
                    Some(&at) => Turn::Until(at + self.window),
                    None => Turn::Answer,
                };
            }
            // On schedule: a call that comes late (a timer wakes up late on a busy machine, the
            // caller was slow) lets the next one make up for it, by at most one interval — at
            // most two calls back to back.
            self.next =
                self.next.max(now.checked_sub(self.interval).unwrap_or(now)) + self.interval;
        }
        if self.calls == self.learned && self.mode == Mode::Smooth {
            // The first call since a 429: the window that may give some of the limit back
            // starts now, not while the calls waited for the instance's window to roll.
            self.changed = now;
        }
        self.in_flight += 1;
        remember(&mut self.sent, now);
        let number = self.calls;
        self.calls = self.calls.saturating_add(1);
        Turn::Go(number)
    }

    fn answer(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        remember(&mut self.answered, now);
    }

    /// The call numbered `number` was answered 429 now (see the module documentation).
    fn rate_limited(&mut self, number: u64, now: Instant) {
        self.forget(now);
        remember(&mut self.refused, now);
        if number < self.learned {
            return;
        }
        // What the instance accepted in the last window, as far as this limiter knows.
        let accepted = self
            .sent
            .len()
            .saturating_sub(self.refused.len())
            .saturating_sub(self.in_flight) as f64;
        let floor = match self.configured {
            Some(configured) => (configured / 2.0).max(1.0).min(configured),
            None => ADAPTIVE_FLOOR,
        };
        let estimate = match (self.mode, self.limit) {
            // The first 429 of a limiter that spent its share at once: the instance may refuse
            // bursts, not the rate. If someone else fills the window, the next 429 says so.
            (Mode::Window, Some(limit)) => limit,
            _ => accepted
                .max(floor)
                .min(self.configured.unwrap_or(f64::INFINITY)),
        };
        if self.configured.is_none() {
            self.ceiling = Some(self.ceiling.map_or(estimate, |c| c.max(estimate)));
        }
        self.limit = Some(self.limit.map_or(estimate, |l| l.min(estimate)));
        self.mode = Mode::Smooth;
        self.changed = now;
        self.learned = self.calls;
        self.pace();
        self.next = self.next.max(now + self.interval);
    }
}

fn remember(times: &mut VecDeque<Instant>, at: Instant) {
    if times.len() >= REMEMBERED {
        times.pop_front();
    }
    times.push_back(at);
}

impl Limiter {
    /// A limiter at `limit`, its whole allowance available at once.
    pub fn new(limit: RateLimit) -> Limiter {
        Limiter::with_budget(Budget::new(
            Some(f64::from(limit.per_minute.max(1))),
            limit.share,
        ))
    }

    /// A limiter for an instance whose limit is not known: it lets everything through until
    /// the first 429, then goes evenly at [`EVEN_PACE`] of the limit it estimates (see the
    /// module documentation).
    pub fn adaptive() -> Limiter {
        Limiter::with_budget(Budget::new(None, 1.0))
    }

    /// No limit, and 429s change nothing.
    pub fn off() -> Limiter {
        Limiter { inner: None }
    }

    /// A limiter for an optional limit ([`Limiter::off`] without one).
    pub fn from_option(limit: Option<RateLimit>) -> Limiter {
        limit.map_or_else(Limiter::off, Limiter::new)
    }

    fn with_budget(budget: Budget) -> Limiter {
        Limiter {
            inner: Some(Arc::new(Shared {
                budget: Mutex::new(budget),
                queue: tokio::sync::Mutex::new(()),
                answered: Notify::new(),
            })),
        }
    }

    /// The same limiter counting over `window` instead of a minute (its limit then means calls
    /// per `window`): for tests, against a sandbox whose window is as short.
    pub fn with_window(self, window: Duration) -> Limiter {
        if let Some(shared) = &self.inner {
            let mut budget = lock(&shared.budget);
            budget.window = window.max(Duration::from_millis(1));
            budget.pace();
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
        self.inner
            .as_ref()
            .and_then(|shared| lock(&shared.budget).limit)
    }

    /// Once a 429 made it fall back to even pacing: the calls a window it lets out now
    /// ([`EVEN_PACE`] of the limit in force). `None` while it spends each window's allowance
    /// at once, or limits nothing.
    pub fn smooth_rate(&self) -> Option<f64> {
        let shared = self.inner.as_ref()?;
        let budget = lock(&shared.budget);
        match budget.mode {
            Mode::Smooth => budget.limit.map(|limit| limit * EVEN_PACE),
            Mode::Window => None,
        }
    }

    /// How many calls it let out.
    pub fn calls(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |shared| lock(&shared.budget).calls)
    }

    /// Waits until a call may leave, and counts it. The call is in flight until the permit is
    /// dropped (the answer came) or [`Permit::rate_limited`] says it was refused; keep it until
    /// then.
    pub async fn acquire(&self) -> Permit {
        let Some(shared) = &self.inner else {
            return Permit {
                shared: None,
                number: 0,
            };
        };
        let _turn = shared.queue.lock().await;
        loop {
            let mut answered = pin!(shared.answered.notified());
            // Registered before the budget is read: an answer after that wakes it.
            answered.as_mut().enable();
            let now = Instant::now();
            let turn = lock(&shared.budget).take(now);
            match turn {
                Turn::Go(number) => {
                    return Permit {
                        shared: Some(Arc::clone(shared)),
                        number,
                    };
                }
                Turn::Until(at) => tokio::time::sleep_until(at).await,
                Turn::Answer => answered.await,
            }
        }
    }
}

/// A call let out by a [`Limiter`]: in flight until it is dropped (the call was answered) or
/// told it was refused.
#[derive(Debug)]
#[must_use = "the call is in flight until the permit is dropped"]
pub struct Permit {
    shared: Option<Arc<Shared>>,
    /// How many calls the limiter let out before this one.
    number: u64,
}

impl Permit {
    /// The instance answered this call 429: the limiter falls back to even pacing at what the
    /// instance accepted (see the module documentation).
    pub fn rate_limited(mut self) {
        if let Some(shared) = self.shared.take() {
            let now = Instant::now();
            {
                let mut budget = lock(&shared.budget);
                budget.answer(now);
                budget.rate_limited(self.number, now);
            }
            shared.answered.notify_waiters();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            lock(&shared.budget).answer(Instant::now());
            shared.answered.notify_waiters();
        }
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
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_allowance_is_the_share_of_the_limit() {
        let limit = |per_minute, share| RateLimit { per_minute, share };
        assert_eq!(limit(600, 0.95).allowance(), 570);
        assert_eq!(limit(10, 0.05).allowance(), 1);
        assert_eq!(limit(60, f64::NAN).allowance(), 60);
        assert_eq!(limit(0, 1.0).allowance(), 1);
    }

    /// The times at which `n` calls leave, from the first, each answered at once.
    async fn send(limiter: &Limiter, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..n {
            drop(limiter.acquire().await);
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

    /// The share of a minute goes at once, then each next share a minute later: 400 calls at
    /// 114 a minute take three minutes and a burst.
    #[tokio::test(start_paused = true)]
    async fn each_minute_s_allowance_goes_at_once() {
        let limit = RateLimit {
            per_minute: 120,
            share: 0.95,
        };
        let limiter = Limiter::new(limit);
        let sent = send(&limiter, 400).await;
        assert_eq!(busiest(&sent, MINUTE), 114);
        for (i, at) in sent.iter().enumerate() {
            let window = MINUTE.saturating_mul(u32::try_from(i / 114).unwrap_or(0));
            assert_eq!(*at, window, "call {i}");
        }
        assert_eq!(limiter.calls(), 400);
        assert_eq!(limiter.smooth_rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_window_rolls_sooner() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 120,
            share: 0.95,
        })
        .with_window(Duration::from_secs(3));
        let sent = send(&limiter, 400).await;
        assert_eq!(busiest(&sent, Duration::from_secs(3)), 114);
        assert_eq!(sent.last().copied(), Some(Duration::from_secs(9)));
    }

    /// A call counts from its answer: the instance may count it as late as that.
    #[tokio::test(start_paused = true)]
    async fn the_window_counts_calls_from_their_answer() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 2,
            share: 1.0,
        });
        let start = Instant::now();
        let first = limiter.acquire().await;
        let second = limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(first);
        let third = tokio::spawn({
            let limiter = limiter.clone();
            async move {
                drop(limiter.acquire().await);
                start.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Both calls are in flight or answered within the window until the first is answered
        // a minute ago.
        drop(second);
        assert_eq!(third.await.ok(), Some(MINUTE + Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_limiter() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 2,
            share: 1.0,
        });
        let other = limiter.clone();
        let start = Instant::now();
        drop(limiter.acquire().await);
        drop(other.acquire().await);
        drop(limiter.acquire().await);
        assert_eq!(Instant::now() - start, MINUTE);
        assert_eq!(other.calls(), 3);
    }

    /// An instance that refuses bursts (its bucket holds ten calls) answers 429 early in the
    /// first burst: the rate is not what it refused, so the limiter goes evenly at the
    /// configured limit (less the even pace's margin, not the share) from then on. The 429s of
    /// the calls already on their way change nothing more.
    #[tokio::test(start_paused = true)]
    async fn a_refused_burst_falls_back_to_even_pacing_at_the_same_rate() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 600,
            share: 0.95,
        });
        let mut permits = Vec::new();
        for _ in 0..4 {
            permits.push(limiter.acquire().await);
        }
        send(&limiter, 10).await;
        for permit in permits {
            permit.rate_limited();
        }
        assert_eq!(limiter.limit(), Some(600.0));
        assert_eq!(limiter.smooth_rate(), Some(600.0 * EVEN_PACE));
        let steady = Duration::from_secs_f64(60.0 / 588.0);
        let before = Instant::now();
        let sent = send(&limiter, 100).await;
        assert!(
            sent[0].abs_diff(steady) < Duration::from_millis(2),
            "{sent:?}"
        );
        let span = before.elapsed();
        assert!(
            span.abs_diff(steady.saturating_mul(100)) < Duration::from_millis(5),
            "{span:?}"
        );
    }

    /// Another client took half of a 600-a-minute limit: the 429 comes after about 300 calls
    /// of the minute. The limiter first goes evenly at the limit (a refused burst looks the
    /// same), meets the next 429, and then waits until enough calls are a minute old and goes
    /// evenly at the 300 that got through.
    #[tokio::test(start_paused = true)]
    async fn a_second_429_slows_to_what_the_instance_accepted() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 600,
            share: 0.9,
        });
        let origin = Instant::now();
        send(&limiter, 299).await;
        tokio::time::sleep(Duration::from_millis(900)).await;
        limiter.acquire().await.rate_limited();
        assert_eq!(limiter.smooth_rate(), Some(600.0 * EVEN_PACE));
        limiter.acquire().await.rate_limited();
        let limit = limiter.limit().unwrap_or_default();
        assert!((limit - 300.0).abs() < 1e-9, "{limit}");
        assert_eq!(limiter.smooth_rate(), Some(limit * EVEN_PACE));
        // 301 calls in the window, 300 allowed: the next waits for 2 of them to be a minute
        // old, the first 299 of which were answered at the start.
        drop(limiter.acquire().await);
        assert_eq!(origin.elapsed(), MINUTE);
        // Then 294 a minute, evenly: the call at 60 s came long after its turn, so the next
        // makes up for it, and the rest keep the schedule.
        let steady = Duration::from_secs_f64(60.0 / (300.0 * EVEN_PACE));
        let sent = send(&limiter, 250).await;
        assert_eq!(sent[0], Duration::ZERO);
        let span = sent[249];
        assert!(
            span.abs_diff(steady.saturating_mul(249)) < Duration::from_millis(5),
            "{span:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_never_takes_a_configured_limit_below_half() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 100,
            share: 0.95,
        });
        limiter.acquire().await.rate_limited();
        assert_eq!(limiter.limit(), Some(100.0), "a refused burst");
        limiter.acquire().await.rate_limited();
        assert_eq!(limiter.limit(), Some(50.0));
    }

    #[tokio::test(start_paused = true)]
    async fn each_minute_without_a_429_gives_back_a_tenth() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 100,
            share: 0.95,
        });
        limiter.acquire().await.rate_limited();
        limiter.acquire().await.rate_limited();
        assert_eq!(limiter.limit(), Some(50.0));
        for expected in [60.0, 70.0, 80.0, 90.0, 100.0, 100.0] {
            tokio::time::sleep(MINUTE * 2).await;
            drop(limiter.acquire().await);
            let limit = limiter.limit().unwrap_or_default();
            assert!((limit - expected).abs() < 1e-9, "{limit} ≠ {expected}");
        }
        assert_eq!(limiter.smooth_rate(), Some(100.0 * EVEN_PACE), "still even");
    }

    /// Without a configured limit, calls go at once until the first 429; then the limit is
    /// taken as what went through, and calls wait for the window to roll.
    #[tokio::test(start_paused = true)]
    async fn an_adaptive_limiter_learns_the_limit_from_the_first_429() {
        let limiter = Limiter::adaptive();
        let start = Instant::now();
        send(&limiter, 120).await;
        assert_eq!(Instant::now(), start, "nothing waits before a 429");
        assert_eq!(limiter.limit(), None);
        limiter.acquire().await.rate_limited();
        assert_eq!(limiter.limit(), Some(120.0));
        let sent = send(&limiter, 200).await;
        assert!(start.elapsed() >= MINUTE, "{:?}", start.elapsed());
        assert!(busiest(&sent, MINUTE) <= 120, "{}", busiest(&sent, MINUTE));
        // A 429 after a handful of calls says little about the limit: at least 60 a minute,
        // and no wait for a minute these calls did not fill.
        let early = Limiter::adaptive();
        early.acquire().await.rate_limited();
        assert_eq!(early.limit(), Some(ADAPTIVE_FLOOR));
        let before = Instant::now();
        send(&early, 3).await;
        let expected = Duration::from_secs_f64(60.0 / (60.0 * EVEN_PACE)).saturating_mul(3);
        assert!(before.elapsed().abs_diff(expected) < Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_off_limiter_ignores_429s() {
        let limiter = Limiter::off();
        limiter.acquire().await.rate_limited();
        let start = Instant::now();
        send(&limiter, 1000).await;
        assert_eq!(Instant::now(), start);
        assert_eq!(limiter.limit(), None);
        assert!(!limiter.is_on());
    }

    /// One call of the property test: when it asks, how long its answer takes (the instance
    /// counts it at some moment in between), and whether that answer is a 429.
    #[derive(Clone, Debug)]
    struct Arrival {
        after_ms: u64,
        latency_ms: u64,
        refused: bool,
    }

    /// Calls that ask `after_ms` after the one before, answered `latency_ms` later, each
    /// refused with probability `refusals`.
    fn arrivals(refusals: f64) -> impl Strategy<Value = Vec<Arrival>> {
        prop::collection::vec(
            (
                0u64..400,
                prop_oneof![Just(0u64), 0u64..3_000],
                prop::bool::weighted(refusals),
            )
                .prop_map(|(after_ms, latency_ms, refused)| Arrival {
                    after_ms,
                    latency_ms,
                    refused,
                }),
            1..250,
        )
    }

    /// Runs `arrivals` through `limiter` on tokio's paused clock: the n-th call asks `after_ms`
    /// after the (n−1)-th asked, from a task of its own. Returns when each left and was
    /// answered, from the start.
    fn run(limiter: &Limiter, arrivals: &[Arrival]) -> Vec<(Duration, Duration)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build();
        let Ok(runtime) = runtime else {
            return Vec::new();
        };
        runtime.block_on(async {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for arrival in arrivals {
                tokio::time::sleep(Duration::from_millis(arrival.after_ms)).await;
                let limiter = limiter.clone();
                let arrival = arrival.clone();
                tasks.push(tokio::spawn(async move {
                    let permit = limiter.acquire().await;
                    let sent = start.elapsed();
                    tokio::time::sleep(Duration::from_millis(arrival.latency_ms)).await;
                    let answered = start.elapsed();
                    if arrival.refused {
                        permit.rate_limited();
                    } else {
                        drop(permit);
                    }
                    (sent, answered)
                }));
            }
            let mut calls = Vec::new();
            for task in tasks {
                if let Ok(call) = task.await {
                    calls.push(call);
                }
            }
            calls
        })
    }

    /// The most calls an instance can count in one `window`, counting each call at any moment
    /// between its leaving and its answer: for each call's leaving `s`, the calls that left by
    /// `s` and were answered after `s − window`.
    fn most_in_a_window(calls: &[(Duration, Duration)], window: Duration) -> usize {
        calls
            .iter()
            .map(|&(s, _)| {
                calls
                    .iter()
                    .filter(|&&(sent, answered)| sent <= s && answered + window > s)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// For any arrivals and latencies, no sliding window — on the instance's clock,
        /// wherever between leaving and answer it counts each call — holds more than the share
        /// of the configured limit while the instance answers no 429.
        #[test]
        fn no_sliding_window_ever_holds_more_than_the_share(
            arrivals in arrivals(0.0),
            per_minute in 1u32..80,
            share_percent in 50u32..=100,
        ) {
            let window = Duration::from_secs(5);
            let limit = RateLimit { per_minute, share: f64::from(share_percent) / 100.0 };
            let limiter = Limiter::new(limit).with_window(window);
            let calls = run(&limiter, &arrivals);
            prop_assert_eq!(calls.len(), arrivals.len());
            let most = most_in_a_window(&calls, window);
            prop_assert!(
                most <= limit.allowance() as usize,
                "{} calls in a window, allowance {}", most, limit.allowance()
            );
            prop_assert_eq!(limiter.smooth_rate(), None);
        }

        /// With 429s too (after which the limiter paces evenly at the limit it learned), no
        /// sliding window holds more than the configured limit.
        #[test]
        fn no_sliding_window_ever_holds_more_than_the_limit_after_429s(
            arrivals in arrivals(0.05),
            per_minute in 1u32..80,
            share_percent in 50u32..=100,
        ) {
            let window = Duration::from_secs(5);
            let limit = RateLimit { per_minute, share: f64::from(share_percent) / 100.0 };
            let limiter = Limiter::new(limit).with_window(window);
            let calls = run(&limiter, &arrivals);
            prop_assert_eq!(calls.len(), arrivals.len());
            let most = most_in_a_window(&calls, window);
            prop_assert!(
                most <= per_minute as usize,
                "{} calls in a window, limit {}", most, per_minute
            );
        }
    }
}
