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
///
/// A request counts in the windows from its start until a window's length after its answer
/// came (`finished`): the server counts it at arrival, somewhere in between, so a request
/// delayed on the way (a loaded machine, a slow network) never makes the server see one more
/// in its window than the client did.
#[derive(Debug)]
pub struct RateLimiter {
    windows: Vec<Window>,
    /// The queue of waiting callers (held while one waits).
    queue: Mutex<()>,
    /// Recent requests (sequence number, start or answer time), oldest first; as many as the
    /// largest window counts.
    sent: std::sync::Mutex<Recent>,
    /// No request starts before this (set after the server answered 429 anyway).
    held: std::sync::Mutex<Option<Instant>>,
}

#[derive(Debug, Default)]
struct Recent {
    entries: VecDeque<(u64, Instant)>,
    next: u64,
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
            queue: Mutex::new(()),
            sent: std::sync::Mutex::new(Recent::default()),
            held: std::sync::Mutex::new(None),
        }
    }

    /// Start no request for `pause` from now: the server refused one (429) although the
    /// windows had room, so every caller sharing this limiter waits it out together.
    pub fn hold_for(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut held = match self.held.lock() {
            Ok(held) => held,
            Err(poisoned) => poisoned.into_inner(),
        };
        if held.is_none_or(|at| at < until) {
            *held = Some(until);
        }
    }

    fn held_until(&self) -> Option<Instant> {
        match self.held.lock() {
            Ok(held) => *held,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// The windows enforced.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        match self.sent.lock() {
            Ok(recent) => recent,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Wait until a request may start, and count it; the number to give `finished` when its
    /// answer came (`None` without windows).
    pub async fn acquire(&self) -> Option<u64> {
        // The queue is held while waiting: later callers queue behind, in order.
        let _turn = self.queue.lock().await;
        loop {
            let now = Instant::now();
            let held = self.held_until().filter(|at| *at > now);
            let ready = self.ready_at(&self.recent().entries, now);
            match ready.max(held) {
                Some(at) if at > now => tokio::time::sleep_until(at).await,
                _ => break,
            }
        }
        if self.windows.is_empty() {
            return None;
        }
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
        let mut recent = self.recent();
        // The time is taken under the lock: entries stay in time order even when another
        // request's answer is recorded meanwhile.
        let now = Instant::now();
        let seq = recent.next;
        recent.next += 1;
        recent.entries.push_back((seq, now));
        while recent.entries.len() > keep
            || recent
                .entries
                .front()
                .is_some_and(|(_, first)| now.duration_since(*first) >= longest)
        {
            recent.entries.pop_front();
        }
        Some(seq)
    }

    /// The answer to request `seq` came: it counts from now (kept in time order).
    pub fn finished(&self, seq: u64) {
        let mut recent = self.recent();
        let now = Instant::now();
        let Some(index) = recent.entries.iter().rposition(|(s, _)| *s == seq) else {
            return;
        };
        recent.entries.remove(index);
        let at = recent
            .entries
            .iter()
            .rposition(|(_, t)| *t <= now)
            .map_or(0, |i| i + 1);
        recent.entries.insert(at, (seq, now));
    }

    /// When every window has room for one more request (`None`: now).
    fn ready_at(&self, sent: &VecDeque<(u64, Instant)>, now: Instant) -> Option<Instant> {
        self.windows
            .iter()
            .filter_map(|window| {
                let limit = window.requests as usize;
                let in_window = sent
                    .iter()
                    .rev()
                    .take_while(|(_, at)| now.duration_since(*at) < window.per)
                    .count();
                if in_window < limit {
                    return None;
                }
                // The request that must leave the window before another may start.
                let blocking = sent[sent.len() - limit].1;
                Some(blocking + window.per)
            })
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> RateLimiter {
        RateLimiter::new(&[
            Window::new(3, Duration::from_secs(5)),
            Window::new(5, Duration::from_secs(60)),
        ])
    }

    /// The pure schedule, at explicit instants (no sleeping): the 4th request of a burst waits
    /// for the first to leave the short window, the 6th for the long window.
    #[tokio::test]
    async fn requests_wait_for_room_in_every_window() {
        let limiter = limiter();
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let stamp = |times: &[Instant]| -> VecDeque<(u64, Instant)> {
            times.iter().map(|t| (0, *t)).collect()
        };
        let mut sent = stamp(&[at(0), at(0), at(0)]);
        assert_eq!(limiter.ready_at(&sent, at(1)), Some(at(5)));
        // At 5 s the first three have left the short window.
        assert_eq!(limiter.ready_at(&sent, at(5)), None);
        sent.extend(stamp(&[at(5), at(5)]));
        // Three in the last 5 s (at 5 s) and five in the minute: the minute decides.
        assert_eq!(limiter.ready_at(&sent, at(11)), Some(at(60)));
        // Room in both windows: at once.
        let sent = stamp(&[at(0)]);
        assert_eq!(limiter.ready_at(&sent, at(1)), None);
        let unlimited = RateLimiter::new(&[]);
        assert_eq!(unlimited.ready_at(&sent, at(1)), None);
    }

    /// A 429 holds every caller of the limiter; a shorter hold does not cut a longer one short.
    #[tokio::test]
    async fn a_hold_delays_the_next_request() {
        let limiter = RateLimiter::new(&[]);
        assert_eq!(limiter.held_until(), None);
        let before = Instant::now();
        limiter.hold_for(Duration::from_secs(7));
        let held = limiter.held_until().expect("held");
        assert!(held >= before + Duration::from_secs(7));
        limiter.hold_for(Duration::from_secs(1));
        assert_eq!(limiter.held_until(), Some(held));
        limiter.hold_for(Duration::from_secs(9));
        assert!(limiter.held_until().expect("held") > held);
        // A hold already past lets a request through at once.
        let quick = RateLimiter::new(&[Window::new(1, Duration::from_secs(60))]);
        quick.hold_for(Duration::ZERO);
        assert_eq!(quick.acquire().await, Some(0));
    }

    /// An answer moves its request to the back: it counts from the answer's time.
    #[tokio::test]
    async fn a_finished_request_counts_from_its_answer() {
        let limiter = limiter();
        let first = limiter.acquire().await.expect("slot");
        let second = limiter.acquire().await.expect("slot");
        assert_eq!((first, second), (0, 1));
        limiter.finished(first);
        let order: Vec<u64> = limiter.recent().entries.iter().map(|(s, _)| *s).collect();
        assert_eq!(order, [1, 0]);
        let times: Vec<Instant> = limiter.recent().entries.iter().map(|(_, t)| *t).collect();
        assert!(times[0] <= times[1]);
        // An unknown number changes nothing.
        limiter.finished(99);
        assert_eq!(limiter.recent().entries.len(), 2);
    }
}
