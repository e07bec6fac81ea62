//! When to try a call again, and how long to wait first: full-jitter exponential backoff
//! (a uniform wait between zero and `base × 2^(attempt − 1)`, capped), or the instance's
//! `Retry-After` when it sent one, with a little jitter on top so that the calls it held back
//! do not all come back in the same instant.
//!
//! Failures and 429s are counted apart. A 5xx, a timeout or a lost connection is a failure,
//! and a call fails for good after [`RetryPolicy::max_attempts`] of them. A 429 is the
//! instance's flow control, not a failure: it slows the shared limiter down (`limiter.rs`) and
//! uses none of the attempts; a call gives up on 429s only once they have kept it waiting for
//! [`RetryPolicy::patience`] — longer than any minute's window takes to slide.

use std::sync::Mutex;
use std::time::Duration;

/// How often and how patiently a failed call is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call that end in a failure (a 5xx, a timeout, a lost connection), the first
    /// included (at least one). Attempts answered 429 are not counted.
    pub max_attempts: u32,
    /// The backoff before the second attempt is drawn from `[0, base]`, doubling after that.
    pub base: Duration,
    /// The longest backoff drawn (a `Retry-After` may ask for longer, and is honoured).
    pub cap: Duration,
    /// After a create or a transfer timed out, how long to wait before reading whether it was
    /// applied: the instance may still be carrying it out, and a read that comes first would
    /// find nothing and send it a second time.
    pub settle: Duration,
    /// How long a call may keep meeting 429s, from the first of them, before its step fails.
    pub patience: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(20),
            settle: Duration::from_secs(10),
            patience: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// Whether a call that just failed its `attempt`-th time may be tried again.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }

    /// Whether a call first refused with 429 `waited` ago may be tried again.
    pub fn still_patient(&self, waited: Duration) -> bool {
        waited < self.patience
    }

    /// The wait after the `attempt`-th failure.
    pub fn backoff(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter: &Jitter,
    ) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1 << exponent).min(self.cap);
        match retry_after {
            Some(asked) => asked + jitter.up_to(self.base.min(ceiling)),
            None => jitter.up_to(ceiling),
        }
    }
}

/// A small random source for jitter (SplitMix64): reproducible from its seed, shared by the
/// calls of one apply (or of one paced client).
#[derive(Debug)]
pub struct Jitter {
    state: Mutex<u64>,
}

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter {
            state: Mutex::new(seed),
        }
    }

    fn next_u64(&self) -> u64 {
        let mut state = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration drawn uniformly from `[0, most]`.
    pub fn up_to(&self, most: Duration) -> Duration {
        // The top 53 bits fill an f64 mantissa exactly.
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        most.mul_f64(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_stays_under_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            settle: Duration::ZERO,
            patience: Duration::from_secs(60),
        };
        let jitter = Jitter::new(1);
        for attempt in 1..40 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1).min(30))
                .min(Duration::from_secs(1));
            for _ in 0..50 {
                assert!(policy.backoff(attempt, None, &jitter) <= ceiling);
            }
        }
        let waits: Vec<Duration> = (0..200).map(|_| policy.backoff(8, None, &jitter)).collect();
        assert!(waits.iter().any(|w| *w > Duration::from_millis(500)));
        assert!(waits.iter().any(|w| *w < Duration::from_millis(500)));
        assert!(policy.allows_another(4));
        assert!(!policy.allows_another(5));
        assert!(policy.still_patient(Duration::from_secs(59)));
        assert!(!policy.still_patient(Duration::from_secs(60)));
    }

    #[test]
    fn retry_after_is_honoured() {
        let policy = RetryPolicy::default();
        let jitter = Jitter::new(2);
        let wait = policy.backoff(1, Some(Duration::from_secs(30)), &jitter);
        assert!(wait >= Duration::from_secs(30) && wait <= Duration::from_millis(30_200));
    }

    #[test]
    fn the_same_seed_draws_the_same_waits() {
        let draw = |seed| {
            let jitter = Jitter::new(seed);
            (0..16)
                .map(|_| jitter.up_to(Duration::from_secs(1)))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
