//! Fault injection for the simulators: added latency, injected server errors and dropped
//! connections, decided per request from the simulator's seeded generator.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::random::Rng;

/// Which faults to inject into API requests (admin endpoints are never faulted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability (0..=1) that a request is answered with `error_status` without being run.
    pub error_rate: f64,
    /// Status of injected errors (500..=599).
    pub error_status: u16,
    /// Latency added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Extra random latency, uniform in `0..=latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    /// Probability (0..=1) that the connection is closed without a response.
    pub drop_rate: f64,
    /// Whether a dropped request was run first (`after`: the side effect happened, only the
    /// response is lost) or not (`before`).
    pub drop_phase: DropPhase,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_status: 500,
            latency_ms: 0,
            latency_jitter_ms: 0,
            drop_rate: 0.0,
            drop_phase: DropPhase::After,
        }
    }
}

/// When a dropped connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPhase {
    Before,
    After,
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FaultDecision {
    pub(crate) delay: Duration,
    pub(crate) error: Option<u16>,
    pub(crate) drop: Option<DropPhase>,
}

impl Faults {
    /// Check the ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!(
                    "`faults.{name}` must be between 0 and 1, not {value}"
                ));
            }
        }
        if !(500..=599).contains(&self.error_status) {
            return Err(format!(
                "`faults.error_status` must be a 5xx status, not {}",
                self.error_status
            ));
        }
        Ok(())
    }

    /// Decide the faults of one request. Always draws the same number of values, so the
    /// sequence of decisions depends only on the seed and the number of requests.
    pub(crate) fn decide(&self, rng: &mut Rng) -> FaultDecision {
        let jitter = rng.below(self.latency_jitter_ms.saturating_add(1));
        let error = rng.chance(self.error_rate);
        let drop = rng.chance(self.drop_rate);
        FaultDecision {
            delay: Duration::from_millis(self.latency_ms.saturating_add(jitter)),
            error: error.then_some(self.error_status),
            drop: (drop && !error).then_some(self.drop_phase),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_repeat_for_a_seed() {
        let faults = Faults {
            error_rate: 0.3,
            drop_rate: 0.2,
            latency_jitter_ms: 10,
            ..Faults::default()
        };
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50).map(|_| faults.decide(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert!(run(3).iter().any(|d| d.error.is_some()));
        assert!(run(3).iter().any(|d| d.drop.is_some()));
        assert!(Faults::default().validate().is_ok());
        let bad = Faults {
            error_rate: 1.5,
            ..Faults::default()
        };
        assert!(bad.validate().unwrap_err().contains("error_rate"));
    }
}
