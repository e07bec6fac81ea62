//! Fault injection: extra 429s, 500s, added latency and "applied but lost" writes.
//!
//! Each fault is a probability per request. The draws come from a generator seeded with
//! `--seed`, four per request in a fixed order, so the same seed and the same sequence of
//! requests meet the same faults.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How often each fault happens. All zero (the default) means no faults.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability of answering 429 before handling the request.
    pub too_many_requests: f64,
    /// Probability of answering 500 before handling the request.
    pub server_error: f64,
    /// Probability of waiting `latency` before handling the request.
    pub slow: f64,
    pub latency: Duration,
    /// Probability, for a successful write, of dropping the connection after the commit and
    /// before the response.
    pub lost: f64,
}

impl Faults {
    /// Whether any fault can happen.
    pub fn any(&self) -> bool {
        self.too_many_requests > 0.0
            || self.server_error > 0.0
            || self.slow > 0.0
            || self.lost > 0.0
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.any() {
            return f.write_str("off");
        }
        let mut parts = Vec::new();
        if self.too_many_requests > 0.0 {
            parts.push(format!("429={}", self.too_many_requests));
        }
        if self.server_error > 0.0 {
            parts.push(format!("500={}", self.server_error));
        }
        if self.slow > 0.0 {
            parts.push(format!(
                "latency={}:{}ms",
                self.slow,
                self.latency.as_millis()
            ));
        }
        if self.lost > 0.0 {
            parts.push(format!("lost={}", self.lost));
        }
        f.write_str(&parts.join(","))
    }
}

/// Why a fault spec could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultSpecError {
    #[error("unknown fault `{0}`; faults are `429`, `500`, `latency` and `lost`")]
    UnknownFault(String),
    #[error("fault `{0}` needs a probability, as in `{0}=0.1`")]
    MissingProbability(String),
    #[error("probability `{0}` is not a number between 0 and 1")]
    BadProbability(String),
    #[error("latency needs a duration, as in `latency=0.3:200ms`")]
    MissingLatency,
    #[error("duration `{0}` is not a whole number of `ms` or `s`")]
    BadDuration(String),
}

impl FromStr for Faults {
    type Err = FaultSpecError;

    /// Reads `429=0.2,500=0.1,latency=0.3:200ms,lost=0.05`; any subset, in any order.
    fn from_str(spec: &str) -> Result<Faults, FaultSpecError> {
        let mut faults = Faults::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, value)) = item.split_once('=') else {
                return Err(FaultSpecError::MissingProbability(item.to_owned()));
            };
            let name = name.trim();
            match name {
                "429" => faults.too_many_requests = probability(value)?,
                "500" => faults.server_error = probability(value)?,
                "lost" => faults.lost = probability(value)?,
                "latency" => {
                    let (p, latency) = value
                        .split_once(':')
                        .ok_or(FaultSpecError::MissingLatency)?;
                    faults.slow = probability(p)?;
                    faults.latency = duration(latency)?;
                }
                _ => return Err(FaultSpecError::UnknownFault(name.to_owned())),
            }
        }
        Ok(faults)
    }
}

fn probability(text: &str) -> Result<f64, FaultSpecError> {
    let text = text.trim();
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(FaultSpecError::BadProbability(text.to_owned())),
    }
}

fn duration(text: &str) -> Result<Duration, FaultSpecError> {
    let text = text.trim();
    let bad = || FaultSpecError::BadDuration(text.to_owned());
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().map(Duration::from_millis).map_err(|_| bad());
    }
    if let Some(s) = text.strip_suffix('s') {
        return s.parse().map(Duration::from_secs).map_err(|_| bad());
    }
    Err(bad())
}

/// The faults drawn for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Draw {
    pub too_many_requests: bool,
    pub server_error: bool,
    pub slow: bool,
    pub lost: bool,
}

/// SplitMix64: small, fast and, unlike `rand`'s `StdRng`, the same sequence in every version.
#[derive(Clone, Debug)]
pub struct Generator {
    state: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `[low, high]`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        let span = high.abs_diff(low).saturating_add(1);
        low.saturating_add_unsigned(self.next_u64() % span)
    }

    /// Draws the faults of one request: always four numbers, in a fixed order.
    pub fn draw(&mut self, faults: &Faults) -> Draw {
        let mut hit = |p: f64| self.next_f64() < p;
        Draw {
            too_many_requests: hit(faults.too_many_requests),
            server_error: hit(faults.server_error),
            slow: hit(faults.slow),
            lost: hit(faults.lost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_spec_is_read() {
        let faults: Faults = "429=0.2,500=0.1,latency=0.3:200ms,lost=0.05"
            .parse()
            .unwrap();
        assert_eq!(
            faults,
            Faults {
                too_many_requests: 0.2,
                server_error: 0.1,
                slow: 0.3,
                latency: Duration::from_millis(200),
                lost: 0.05,
            }
        );
        assert_eq!(
            faults.to_string(),
            "429=0.2,500=0.1,latency=0.3:200ms,lost=0.05"
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        for spec in ["404=0.1", "429", "429=2", "latency=0.1", "latency=0.1:2m"] {
            assert!(spec.parse::<Faults>().is_err(), "{spec}");
        }
    }

    #[test]
    fn probability_one_always_hits_and_zero_never() {
        let mut generator = Generator::new(7);
        let always = Faults {
            lost: 1.0,
            ..Faults::default()
        };
        for _ in 0..1000 {
            let draw = generator.draw(&always);
            assert!(draw.lost && !draw.too_many_requests && !draw.server_error && !draw.slow);
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let faults: Faults = "429=0.5,500=0.5,lost=0.5".parse().unwrap();
        let run = |seed| {
            let mut generator = Generator::new(seed);
            (0..64).map(|_| generator.draw(&faults)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }
}
