//! The one retry policy for HTTP requests, and `Retry-After` parsing.

use std::time::{Duration, SystemTime};

use backon::ExponentialBuilder;

/// Longest pause between two attempts when the server gives no `Retry-After`.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Longest `Retry-After` waited for by default: a run does not stall longer inside one request;
/// a longer wait goes back to the caller (the executor records it and moves on).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How a request that may be repeated is retried on connect errors, timeouts, 5xx and 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (1: never retried).
    pub attempts: u32,
    /// First delay; doubled after each attempt (up to a minute). Zero in tests.
    pub base_delay: Duration,
    /// Longest `Retry-After` waited for; an answer asking for longer is returned to the caller
    /// without a retry (retrying sooner than asked would only be refused again). Zero in tests.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_secs(5),
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// The default, with the first delay (and the longest `Retry-After`) from
    /// `CERTFORM_RETRY_DELAY_MS` when set (0 in tests, so suites stay fast).
    pub fn from_env() -> Self {
        let mut policy = Self::default();
        // The crate's own unit tests never wait on backoff (integration tests set the variable).
        let test_delay = cfg!(test).then_some(0);
        if let Some(ms) = std::env::var("CERTFORM_RETRY_DELAY_MS")
            .ok()
            .and_then(|value| value.parse::<u64>().ok())
            .or(test_delay)
        {
            policy.base_delay = Duration::from_millis(ms);
            policy.max_retry_after = policy.base_delay;
        }
        policy
    }

    /// One attempt only.
    pub fn never() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// The backoff schedule (without `Retry-After`, which adjusts it per answer).
    pub(super) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(MAX_DELAY.max(self.base_delay))
            .with_factor(2.0)
            .with_max_times(self.attempts.saturating_sub(1) as usize)
    }

    /// Whether a `Retry-After` is short enough to wait for here.
    pub(super) fn waits_for(&self, retry_after: Option<Duration>) -> bool {
        retry_after.is_none_or(|wait| wait <= self.max_retry_after)
    }

    /// The pause before the next attempt: the server's `Retry-After` when it gave one, else
    /// the backoff's.
    pub(super) fn pause(&self, backoff: Duration, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or(backoff)
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as a wait from
/// `now` (zero for a date already past). `None` for anything else.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
