//! A client's pacing: every call waits for the [limiter](super::limiter), and a call that
//! certainly did nothing on the instance is tried again with the [backoff](super::retry) —
//! reads that met a 429, a 5xx, a timeout or a connection failure, and writes that met a 429 or
//! never reached the instance.
//!
//! A 429 is flow control, not a failure: it slows the limiter (which also holds back every
//! other call of the same limiter) and the call waits its turn again; it does not use up the
//! call's attempts. A call gives up on 429s only once they have gone on for the retry policy's
//! [`patience`](RetryPolicy::patience).
//!
//! A write whose outcome is unknown (a 5xx, a timeout, a connection lost after sending) is
//! never repeated here: only the executor knows how to look its effect up first. The executor
//! therefore calls through [`Client::without_pacing`](super::Client::without_pacing) and paces
//! and retries its steps itself, with the same pacing: its limiter, retry policy and jitter.
//! A pacing is the one way to pace an apply; a client without one is paced by
//! [`Pacing::default`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use super::error::{ApiError, ApiErrorKind};
use super::limiter::Limiter;
use super::retry::{Jitter, RetryPolicy};

/// How a client paces and retries its calls (see the module documentation). Clones share the
/// limiter, the jitter and the counts.
#[derive(Clone, Debug)]
pub struct Pacing {
    /// The limiter every call waits for; the executor of the same command shares it.
    pub limiter: Limiter,
    /// Attempts and backoff for failures other than 429, and how long one call keeps being
    /// tried while the instance answers 429; a whole observation read again because the
    /// instance changed during it counts one attempt.
    pub retry: RetryPolicy,
    jitter: Arc<Jitter>,
    counts: Arc<Counts>,
}

/// Seeds the backoff jitter when nothing else is said.
pub const DEFAULT_SEED: u64 = 0x0063_6861_7274_6572;

#[derive(Debug, Default)]
struct Counts {
    retries: AtomicU64,
    rate_limited: AtomicU64,
}

/// What a command without a configured limit uses: an [adaptive](Limiter::adaptive) limiter,
/// the default retry policy and seed.
impl Default for Pacing {
    fn default() -> Pacing {
        Pacing::new(Limiter::adaptive(), RetryPolicy::default(), DEFAULT_SEED)
    }
}

impl Pacing {
    /// Pacing through `limiter`, retrying with `retry`; `seed` seeds the jitter.
    pub fn new(limiter: Limiter, retry: RetryPolicy, seed: u64) -> Pacing {
        Pacing {
            limiter,
            retry,
            jitter: Arc::new(Jitter::new(seed)),
            counts: Arc::new(Counts::default()),
        }
    }

    /// The jitter every backoff of this pacing draws from.
    pub(crate) fn jitter(&self) -> &Arc<Jitter> {
        &self.jitter
    }

    /// Calls tried again (after a 429 or another failure, and observations read again).
    pub fn retries(&self) -> u64 {
        self.counts.retries.load(Ordering::Relaxed)
    }

    /// 429 answers met.
    pub fn rate_limited(&self) -> u64 {
        self.counts.rate_limited.load(Ordering::Relaxed)
    }

    /// Makes a call through the limiter, again while that is safe and allowed: `send` makes it
    /// once.
    pub(crate) async fn call<T>(
        &self,
        send: impl AsyncFn() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let started = Instant::now();
        let mut failures = 0;
        let mut refusals = 0;
        loop {
            let permit = self.limiter.acquire().await;
            let error = match send().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let refused = matches!(error.kind, ApiErrorKind::RateLimited { .. });
            if refused {
                self.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
                permit.rate_limited();
            } else {
                drop(permit);
            }
            // Only what certainly changed nothing is sent again here.
            if !error.is_retryable() || error.outcome_unknown() {
                return Err(error);
            }
            let wait = if refused {
                refusals += 1;
                if !self.retry.still_patient(started.elapsed()) {
                    return Err(error);
                }
                self.retry
                    .backoff(refusals, error.retry_after(), &self.jitter)
            } else {
                failures += 1;
                if !self.retry.allows_another(failures) {
                    return Err(error);
                }
                self.retry.backoff(failures, None, &self.jitter)
            };
            self.counts.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether a whole reading that failed its `attempt`-th time with `error` is to be made
    /// again; waits the backoff first when it is.
    pub(crate) async fn read_again(&self, attempt: u32, error: &ApiError) -> bool {
        if !matches!(error.kind, ApiErrorKind::Inconsistent { .. })
            || !self.retry.allows_another(attempt)
        {
            return false;
        }
        self.counts.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.retry.backoff(attempt, None, &self.jitter)).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    use super::*;
    use crate::api::error::{Call, Method};
    use crate::api::limiter::RateLimit;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            settle: Duration::ZERO,
            patience: Duration::from_secs(600),
        }
    }

    fn error(method: Method, kind: ApiErrorKind) -> ApiError {
        ApiError::new(
            Call {
                method,
                path: "/admin/users".to_owned(),
                query: Vec::new(),
            },
            kind,
        )
    }

    fn rate_limited() -> ApiErrorKind {
        ApiErrorKind::RateLimited { retry_after: None }
    }

    /// Answers with the errors given, in turn, then succeeds; counts the calls.
    struct Script {
        errors: Vec<ApiError>,
        calls: AtomicU32,
    }

    impl Script {
        fn new(errors: Vec<ApiError>) -> Script {
            Script {
                errors,
                calls: AtomicU32::new(0),
            }
        }

        async fn send(&self) -> Result<u32, ApiError> {
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            match self.errors.get(n as usize) {
                Some(error) => Err(error.clone()),
                None => Ok(n + 1),
            }
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::Relaxed)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_is_retried_through_5xx_timeouts_and_lost_connections() {
        let pacing = Pacing::new(Limiter::off(), policy(), 1);
        let script = Script::new(vec![
            error(Method::Get, ApiErrorKind::Server),
            error(
                Method::Get,
                ApiErrorKind::ConnectionLost {
                    reason: "reset".to_owned(),
                },
            ),
        ]);
        assert_eq!(pacing.call(async || script.send().await).await, Ok(3));
        assert_eq!(pacing.retries(), 2);
        // The third failure in a row is the last attempt.
        let script = Script::new(vec![
            error(Method::Get, ApiErrorKind::Server),
            error(
                Method::Get,
                ApiErrorKind::Timeout {
                    after: Duration::from_secs(30),
                },
            ),
            error(Method::Get, ApiErrorKind::Server),
        ]);
        let failed = pacing.call(async || script.send().await).await;
        assert_eq!(
            failed.map_err(|e| e.kind.clone()),
            Err(ApiErrorKind::Server)
        );
        assert_eq!(script.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_and_writes_of_unknown_outcome_are_not_repeated() {
        let pacing = Pacing::new(Limiter::off(), policy(), 1);
        for error in [
            error(Method::Get, ApiErrorKind::Rejected),
            error(Method::Get, ApiErrorKind::NotFound),
            error(Method::Post, ApiErrorKind::Server),
            error(
                Method::Post,
                ApiErrorKind::Timeout {
                    after: Duration::from_secs(30),
                },
            ),
        ] {
            let script = Script::new(vec![error]);
            assert!(pacing.call(async || script.send().await).await.is_err());
            assert_eq!(script.calls(), 1);
        }
        // A write the instance refused with 429 did nothing: it is sent again.
        let script = Script::new(vec![error(Method::Post, rate_limited())]);
        assert_eq!(pacing.call(async || script.send().await).await, Ok(2));
    }

    /// Twenty 429s in a row do not use up three attempts: they slow the limiter, and the call
    /// goes on until its patience runs out.
    #[tokio::test(start_paused = true)]
    async fn a_429_slows_the_limiter_instead_of_failing_the_call() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 600,
            share: 0.95,
        });
        let pacing = Pacing::new(limiter.clone(), policy(), 1);
        let script = Script::new(vec![error(Method::Get, rate_limited()); 20]);
        assert_eq!(pacing.call(async || script.send().await).await, Ok(21));
        assert_eq!(pacing.rate_limited(), 20);
        assert_eq!(limiter.limit(), Some(300.0), "slowed, down to half");

        let impatient = Pacing::new(
            Limiter::off(),
            RetryPolicy {
                patience: Duration::from_secs(2),
                ..policy()
            },
            1,
        );
        let script = Script::new(vec![error(Method::Get, rate_limited()); 1000]);
        let started = Instant::now();
        assert!(impatient.call(async || script.send().await).await.is_err());
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert!(script.calls() > 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_for() {
        let pacing = Pacing::new(Limiter::off(), policy(), 1);
        let script = Script::new(vec![error(
            Method::Get,
            ApiErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
            },
        )]);
        let started = Instant::now();
        assert_eq!(pacing.call(async || script.send().await).await, Ok(2));
        assert!(started.elapsed() >= Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn only_an_inconsistent_reading_is_read_again() {
        let pacing = Pacing::new(Limiter::off(), policy(), 1);
        let inconsistent = error(
            Method::Get,
            ApiErrorKind::Inconsistent {
                problem: "moved".to_owned(),
            },
        );
        assert!(pacing.read_again(1, &inconsistent).await);
        assert!(pacing.read_again(2, &inconsistent).await);
        assert!(!pacing.read_again(3, &inconsistent).await, "three attempts");
        assert!(
            !pacing
                .read_again(1, &error(Method::Get, ApiErrorKind::Server))
                .await
        );
        assert_eq!(pacing.retries(), 2);
    }
}
