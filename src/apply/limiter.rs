//! The client-side rate limiter: a token bucket shared by every call of one apply, at a share
//! of the instance's requests per minute, so that the instance's 429s are rare instead of being
//! the flow control — and that slows down when they come all the same.
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
//! **The instance refusing calls slows every call down.** Make counts requests per minute (the
//! license's `apiLimit`) and documents no `Retry-After`. A 429 alone may be a stray one (a
//! proxy, another client's burst); one that the instance keeps answering — [`IN_A_ROW`] 429s
//! with no other answer between them — says it took all it will take in the last minute. The
//! limiter counts the calls that left over the last minute (in one-second slots; a call refused
//! with 429 is taken back out, as the instance does not count it either), and such a run of
//! 429s lowers its rate to the share of what the instance accepted, or to 4/5 of the rate in
//! force when that is not lower (fewer than 10 calls is too few to go by, or the instance counts
//! in some other way). With no limit configured, that sets one; until then calls go unpaced and
//! each backs off on its own. The bucket is then placed as though the last minute's calls had
//! gone through it at the new rate — the next call waits until they have aged out of the
//! instance's minute — and has no burst any more. 429s to calls that left before the rate was
//! last lowered tell nothing new and are not counted (calls in flight together meet the same
//! full minute). Every 429 empties the burst, and a `Retry-After`, when an instance sends one,
//! holds every call until it has passed. The rate does not rise again during the apply: an
//! instance that refused at a rate may well refuse again.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Fewer calls accepted over the last minute than this say too little about the limit to set a
/// rate from them.
const LEAST_TO_LEARN_FROM: u32 = 10;

/// 429s answered in a row (no other answer between them) that show the instance's minute is
/// full, not a stray refusal: at a 30 % rate of stray 429s, a run this long is one in 170,000.
pub const IN_A_ROW: u32 = 10;

/// When the instance keeps refusing and counting does not give a lower rate, the rate in force
/// is multiplied by this.
const SLOWDOWN: f64 = 0.8;

/// The slowest rate a 429 brings the bucket down to, requests per minute.
const SLOWEST: f64 = 1.0;

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

/// When a call left the limiter, as [`Limiter::acquire`] hands it out: given back with a 429
/// ([`Limiter::rate_limited`]), it says whether the call left before the rate was last lowered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(Instant);

/// A token bucket shared by every call of one apply. [`Limiter::off`] paces nothing until the
/// instance answers 429.
#[derive(Debug)]
pub struct Limiter {
    bucket: Mutex<Bucket>,
    /// Whether a 429 lowers the rate (see the module's documentation); without it, a 429 only
    /// empties the burst.
    adapt: bool,
}

#[derive(Debug)]
struct Bucket {
    /// The share of a learned limit used, as of a configured one.
    share: f64,
    /// `None`: no limit configured and none learned — calls go as they come.
    pace: Option<Pace>,
    /// Calls that left over the last minute, by second since `origin`.
    recent: Recent,
    origin: Instant,
    /// When the rate was last lowered.
    lowered: Option<Instant>,
    /// 429s answered since the last other answer, and when the first of them left.
    refused: u32,
    refused_since: Option<Instant>,
    /// No call leaves before this (a `Retry-After`).
    hold: Option<Instant>,
}

#[derive(Debug)]
struct Pace {
    interval: Duration,
    /// How far ahead of the theoretical arrival time a call may go: `burst − 1` intervals.
    tolerance: Duration,
    /// When the next call would be due if calls left exactly one interval apart.
    next: Instant,
}

/// Calls per second over the last minute: a ring of sixty one-second slots.
#[derive(Debug)]
struct Recent {
    /// (second since the origin, calls in it).
    slots: [(u64, u32); 60],
}

impl Default for Recent {
    fn default() -> Recent {
        Recent {
            slots: [(0, 0); 60],
        }
    }
}

impl Recent {
    fn index(second: u64) -> usize {
        usize::try_from(second % 60).unwrap_or_default()
    }

    fn add(&mut self, second: u64, calls: u32) {
        if let Some(slot) = self.slots.get_mut(Recent::index(second)) {
            if slot.0 != second {
                *slot = (second, 0);
            }
            slot.1 = slot.1.saturating_add(calls);
        }
    }

    fn take_back(&mut self, second: u64) {
        if let Some(slot) = self.slots.get_mut(Recent::index(second))
            && slot.0 == second
        {
            slot.1 = slot.1.saturating_sub(1);
        }
    }

    /// The calls of the minute up to `second` (included), and the first second that had any.
    fn last_minute(&self, second: u64) -> (u32, Option<u64>) {
        let within = |s: u64| s <= second && s + 60 > second;
        let calls = self
            .slots
            .iter()
            .filter(|(s, n)| within(*s) && *n > 0)
            .fold(0u32, |sum, (_, n)| sum.saturating_add(*n));
        let first = self
            .slots
            .iter()
            .filter(|(s, n)| within(*s) && *n > 0)
            .map(|(s, _)| *s)
            .min();
        (calls, first)
    }
}

impl Bucket {
    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs()
    }
}

impl Limiter {
    /// A limiter at `limit`, full (its burst available at once).
    pub fn new(limit: RateLimit) -> Limiter {
        let interval = limit.interval();
        let tolerance = interval.saturating_mul(limit.burst().saturating_sub(1));
        let now = Instant::now();
        Limiter::with(
            limit.share(),
            Some(Pace {
                interval,
                tolerance,
                next: now,
            }),
        )
    }

    /// No limit known: calls go as they come, until the instance answers 429.
    pub fn off() -> Limiter {
        Limiter::with(valid_share(super::DEFAULT_SHARE), None)
    }

    fn with(share: f64, pace: Option<Pace>) -> Limiter {
        Limiter {
            bucket: Mutex::new(Bucket {
                share,
                pace,
                recent: Recent::default(),
                origin: Instant::now(),
                lowered: None,
                refused: 0,
                refused_since: None,
                hold: None,
            }),
            adapt: true,
        }
    }

    /// A limiter for an optional limit.
    pub fn from_option(limit: Option<RateLimit>) -> Limiter {
        limit.map_or_else(Limiter::off, Limiter::new)
    }

    /// Whether a 429 lowers the rate (the default) or only empties the burst.
    pub fn adapting(mut self, adapt: bool) -> Limiter {
        self.adapt = adapt;
        self
    }

    /// Whether it paces calls: a limit was configured, or a 429 set one.
    pub fn is_on(&self) -> bool {
        lock(&self.bucket).pace.is_some()
    }

    /// The rate in force, requests per minute; `None` while calls go unpaced.
    pub fn per_minute(&self) -> Option<f64> {
        lock(&self.bucket)
            .pace
            .as_ref()
            .map(|p| 60.0 / p.interval.as_secs_f64())
    }

    /// Waits until a call may leave, and counts it.
    pub async fn acquire(&self) -> Ticket {
        let now = Instant::now();
        let allowed = {
            let mut bucket = lock(&self.bucket);
            let earliest = bucket.hold.map_or(now, |hold| hold.max(now));
            let allowed = match &mut bucket.pace {
                None => earliest,
                Some(pace) => {
                    let due = pace.next.max(earliest);
                    pace.next = due + pace.interval;
                    due.checked_sub(pace.tolerance)
                        .unwrap_or(earliest)
                        .max(earliest)
                }
            };
            let second = bucket.second(allowed);
            bucket.recent.add(second, 1);
            allowed
        };
        if allowed > now {
            tokio::time::sleep_until(allowed).await;
        }
        Ticket(allowed)
    }

    /// Counts `calls` made with the same token outside the limiter (such as the reads of the
    /// observation just before): later calls wait as if these had gone through it, and a 429
    /// counts them among the calls of the minute.
    pub fn spend(&self, calls: u64) {
        let now = Instant::now();
        let mut bucket = lock(&self.bucket);
        let calls = u32::try_from(calls).unwrap_or(u32::MAX);
        let second = bucket.second(now);
        bucket.recent.add(second, calls);
        if let Some(pace) = &mut bucket.pace {
            pace.next = pace.next.max(now) + pace.interval.saturating_mul(calls);
        }
    }

    /// The instance answered the call that left with `ticket`, with anything but a 429: a run of
    /// 429s that began before the call left is over.
    pub fn answered(&self, ticket: Ticket) {
        let mut bucket = lock(&self.bucket);
        if bucket.refused_since.is_some_and(|since| ticket.0 >= since) {
            bucket.refused = 0;
            bucket.refused_since = None;
        }
    }

    /// The instance answered the call that left with `ticket` with a 429 (asking, perhaps, to
    /// wait `retry_after`): empties the burst and, when the instance keeps refusing, slows the
    /// bucket down as the module's documentation says. Returns the new rate, requests per
    /// minute, when it was lowered.
    pub fn rate_limited(&self, ticket: Ticket, retry_after: Option<Duration>) -> Option<f64> {
        let now = Instant::now();
        let mut bucket = lock(&self.bucket);
        // Whatever burst was left is gone, so the calls after this one go at the steady rate.
        if let Some(pace) = &mut bucket.pace {
            pace.next = pace.next.max(now + pace.tolerance);
        }
        if !self.adapt {
            return None;
        }
        let refused = bucket.second(ticket.0);
        bucket.recent.take_back(refused);
        if let Some(after) = retry_after {
            let until = now + after;
            bucket.hold = Some(bucket.hold.map_or(until, |hold| hold.max(until)));
        }
        if bucket.lowered.is_some_and(|lowered| ticket.0 <= lowered) {
            return None;
        }
        bucket.refused = bucket.refused.saturating_add(1);
        bucket.refused_since = Some(
            bucket
                .refused_since
                .map_or(ticket.0, |since| since.min(ticket.0)),
        );
        if bucket.refused < IN_A_ROW {
            return None;
        }
        let (accepted, first) = bucket.recent.last_minute(bucket.second(now));
        let by_count =
            (accepted >= LEAST_TO_LEARN_FROM).then(|| f64::from(accepted) * bucket.share);
        let by_slowdown = bucket
            .pace
            .as_ref()
            .map(|p| SLOWDOWN * 60.0 / p.interval.as_secs_f64());
        let per_minute = match (by_count, by_slowdown) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            // Too little sent to tell, and nothing to slow down: each call backs off alone.
            (None, None) => return None,
        }
        .max(SLOWEST);
        let interval = Duration::from_secs_f64(60.0 / per_minute);
        // As though the minute's accepted calls had left through the new bucket, from the
        // first of them.
        let first = first.map_or(now, |s| bucket.origin + Duration::from_secs(s));
        let replayed = first + interval.saturating_mul(accepted);
        let next = bucket
            .pace
            .as_ref()
            .map_or(replayed, |p| p.next.max(replayed))
            .max(now);
        bucket.pace = Some(Pace {
            interval,
            tolerance: Duration::ZERO,
            next,
        });
        bucket.lowered = Some(now);
        bucket.refused = 0;
        bucket.refused_since = None;
        Some(per_minute)
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
    async fn without_adapting_a_429_only_empties_the_burst() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 600,
            share: 0.9,
        })
        .adapting(false);
        let start = Instant::now();
        let ticket = limiter.acquire().await;
        assert_eq!(limiter.rate_limited(ticket, None), None);
        limiter.acquire().await;
        limiter.acquire().await;
        assert!(Instant::now() - start >= Duration::from_millis(100));
        assert_eq!(limiter.per_minute().map(f64::round), Some(540.0));
    }

    /// Sends `n` calls as fast as the limiter lets them go; their tickets.
    async fn send(limiter: &Limiter, n: usize) -> Vec<Ticket> {
        let mut tickets = Vec::new();
        for _ in 0..n {
            tickets.push(limiter.acquire().await);
        }
        tickets
    }

    /// The instance refuses each of `tickets`; the rate set, if any.
    fn refuse(limiter: &Limiter, tickets: &[Ticket]) -> Option<f64> {
        tickets
            .iter()
            .filter_map(|t| limiter.rate_limited(*t, None))
            .last()
    }

    /// An instance that takes 100 calls a minute, and charter not told: once it keeps refusing,
    /// the rate is set to the share of the 100 it took, and the next call waits until they have
    /// aged out of its minute.
    #[tokio::test(start_paused = true)]
    async fn with_no_limit_a_run_of_429s_sets_one_from_the_calls_the_instance_took() {
        let limiter = Limiter::off();
        let start = Instant::now();
        send(&limiter, 100).await;
        assert!(!limiter.is_on());
        assert_eq!(Instant::now(), start, "unpaced until told otherwise");
        let refused = send(&limiter, IN_A_ROW as usize).await;
        assert_eq!(
            refuse(&limiter, &refused[..9]),
            None,
            "nine say nothing yet"
        );
        assert!(!limiter.is_on());
        let lowered = refuse(&limiter, &refused[9..]);
        assert_eq!(lowered.map(f64::round), Some(95.0));
        assert!(limiter.is_on());
        limiter.acquire().await;
        let waited = Instant::now() - start;
        assert!(
            waited > Duration::from_secs(60) && waited < Duration::from_secs(64),
            "{waited:?}"
        );
        // From then on, the minute after the first call sees no more than the 95.
        let from = Instant::now();
        let mut calls = 1;
        while Instant::now() - from < Duration::from_secs(60) {
            limiter.acquire().await;
            calls += 1;
        }
        assert!((94..=96).contains(&calls), "{calls}");
    }

    #[tokio::test(start_paused = true)]
    async fn stray_429s_between_other_answers_set_no_rate() {
        let limiter = Limiter::off();
        send(&limiter, 100).await;
        for _ in 0..50 {
            let tickets = send(&limiter, 3).await;
            assert_eq!(refuse(&limiter, &tickets[..2]), None);
            limiter.answered(tickets[2]);
        }
        assert!(!limiter.is_on());
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_to_a_call_that_left_before_the_slowdown_changes_nothing() {
        let limiter = Limiter::off();
        send(&limiter, 40).await;
        let in_flight = send(&limiter, IN_A_ROW as usize + 3).await;
        let (run, late) = in_flight.split_at(IN_A_ROW as usize);
        let rate = refuse(&limiter, run);
        assert!(rate.is_some());
        assert_eq!(refuse(&limiter, late), None);
        assert_eq!(limiter.per_minute().map(f64::round), rate.map(f64::round));
        // Calls that left after it, refused again, slow it down once more.
        let later = send(&limiter, IN_A_ROW as usize).await;
        let again = refuse(&limiter, &later);
        assert!(
            again.is_some_and(|r| r < rate.unwrap_or_default()),
            "{again:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_of_429s_after_few_calls_slows_a_configured_rate_by_a_fifth_and_sets_none() {
        let configured = Limiter::new(RateLimit {
            per_minute: 600,
            share: 1.0,
        });
        let tickets = send(&configured, IN_A_ROW as usize).await;
        let rate = refuse(&configured, &tickets);
        assert_eq!(rate.map(f64::round), Some(480.0));
        // Unpaced, a few calls say nothing about the limit: each call backs off on its own.
        let open = Limiter::off();
        send(&open, 3).await;
        let tickets = send(&open, IN_A_ROW as usize).await;
        assert_eq!(refuse(&open, &tickets), None);
        assert!(!open.is_on());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_every_call() {
        let limiter = Limiter::off();
        let start = Instant::now();
        let ticket = limiter.acquire().await;
        limiter.rate_limited(ticket, Some(Duration::from_secs(7)));
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(7));
    }
}
