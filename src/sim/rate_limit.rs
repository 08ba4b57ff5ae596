//! Rolling-window rate limits per API key: every window is checked on every request, and a
//! request over any limit is refused without being counted.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// At most `requests` within any `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) requests: u32,
    pub(crate) period: Duration,
}

/// Request times per key, pruned to the longest window.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    windows: Vec<Window>,
    history: HashMap<String, VecDeque<Instant>>,
}

impl RateLimiter {
    pub(crate) fn new(windows: Vec<Window>) -> Self {
        Self {
            windows,
            history: HashMap::new(),
        }
    }

    /// Replace the windows and forget the history.
    pub(crate) fn reset(&mut self, windows: Vec<Window>) {
        self.windows = windows;
        self.history.clear();
    }

    /// Count a request by `key` at `now`, or refuse it with the time until it would fit.
    pub(crate) fn check(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        let longest = self
            .windows
            .iter()
            .map(|window| window.period)
            .max()
            .unwrap_or_default();
        let history = self.history.entry(key.to_string()).or_default();
        while let Some(oldest) = history.front() {
            if now.saturating_duration_since(*oldest) >= longest {
                history.pop_front();
            } else {
                break;
            }
        }
        let mut wait = Duration::ZERO;
        for window in &self.windows {
            // Entries are in time order: those inside the window are a suffix.
            let first_inside =
                history.partition_point(|at| now.saturating_duration_since(*at) >= window.period);
            let inside = history.len() - first_inside;
            if inside >= window.requests as usize {
                // The request fits once enough of the oldest entries inside the window leave it.
                let must_leave = inside + 1 - window.requests as usize;
                let index = first_inside + must_leave - 1;
                let leaves_at = history
                    .get(index)
                    .and_then(|at| at.checked_add(window.period))
                    .unwrap_or(now);
                wait = wait.max(leaves_at.saturating_duration_since(now));
            }
        }
        if wait > Duration::ZERO {
            return Err(wait);
        }
        history.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_recovery() {
        let mut limiter = RateLimiter::new(vec![
            Window {
                requests: 3,
                period: Duration::from_secs(5),
            },
            Window {
                requests: 5,
                period: Duration::from_secs(60),
            },
        ]);
        let start = Instant::now();
        for i in 0..3 {
            assert!(limiter.check("k", start + Duration::from_millis(i)).is_ok());
        }
        let wait = limiter
            .check("k", start + Duration::from_secs(1))
            .unwrap_err();
        assert!(wait <= Duration::from_secs(4) && wait > Duration::from_secs(3));
        // Another key is independent.
        assert!(limiter.check("other", start).is_ok());
        // After the burst window, two more fit, then the long window refuses.
        assert!(limiter.check("k", start + Duration::from_secs(6)).is_ok());
        assert!(limiter.check("k", start + Duration::from_secs(6)).is_ok());
        let wait = limiter
            .check("k", start + Duration::from_secs(12))
            .unwrap_err();
        assert!(wait > Duration::from_secs(40), "{wait:?}");
        assert!(limiter.check("k", start + Duration::from_secs(61)).is_ok());
    }
}
