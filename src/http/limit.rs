//! A client-side rate limiter per account: sliding windows ("100 requests per 5 s and 1,000
//! per 3 min"), async and fair (callers pass in the order they arrived).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// At most `requests` requests in any `per`-long span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub requests: u32,
    pub per: Duration,
}

impl Window {
    pub const fn new(requests: u32, per: Duration) -> Self {
        Self { requests, per }
    }
}

/// Holds each request until every window has room for it. Waiters queue on a fair (FIFO)
/// lock, so a burst is served in arrival order and no caller starves.
#[derive(Debug)]
pub struct RateLimiter {
    windows: Vec<Window>,
    /// Start times of recent requests, oldest first; as many as the largest window counts.
    sent: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    /// A limiter for `windows` (windows allowing no request are ignored).
    pub fn new(windows: &[Window]) -> Self {
        Self {
            windows: windows
                .iter()
                .copied()
                .filter(|window| window.requests > 0 && !window.per.is_zero())
                .collect(),
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// The windows enforced.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Wait until a request may start, and count it.
    pub async fn acquire(&self) {
        if self.windows.is_empty() {
            return;
        }
        // The lock is held while waiting: later callers queue behind, in order.
        let mut sent = self.sent.lock().await;
        loop {
            let now = Instant::now();
            match self.ready_at(&sent, now) {
                Some(at) if at > now => tokio::time::sleep_until(at).await,
                _ => break,
            }
        }
        let now = Instant::now();
        sent.push_back(now);
        let keep = self
            .windows
            .iter()
            .map(|window| window.requests as usize)
            .max()
            .unwrap_or(0);
        let longest = self
            .windows
            .iter()
            .map(|window| window.per)
            .max()
            .unwrap_or(Duration::ZERO);
        while sent.len() > keep
            || sent
                .front()
                .is_some_and(|first| now.duration_since(*first) >= longest)
        {
            sent.pop_front();
        }
    }

    /// When every window has room for one more request (`None`: now).
    fn ready_at(&self, sent: &VecDeque<Instant>, now: Instant) -> Option<Instant> {
        self.windows
            .iter()
            .filter_map(|window| {
                let limit = window.requests as usize;
                let in_window = sent
                    .iter()
                    .rev()
                    .take_while(|at| now.duration_since(**at) < window.per)
                    .count();
                if in_window < limit {
                    return None;
                }
                // The request that must leave the window before another may start.
                let blocking = sent[sent.len() - limit];
                Some(blocking + window.per)
            })
            .max()
    }
}
