//! Holds requests under a rate limit such as Braze's 3,000 requests per 3 seconds.
//!
//! Two rules, both kept: requests are spaced evenly rather than sent in bursts, one hundredth of
//! the window slower than the limit allows; and no window holds more than the limit of the moments
//! requests actually left. The second is what Braze counts: a timer that fires late (a busy
//! machine) makes one request late and the next on time, and spacing alone would then let a window
//! hold one too many. Braze's own word wins over both: a 429, or `X-RateLimit-Remaining: 0`, pauses
//! every sender until the window resets.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most `requests` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
}

impl RateLimit {
    /// Braze's default for `/users/track`.
    pub const BRAZE_DEFAULT: RateLimit = RateLimit {
        requests: 3000,
        window: Duration::from_secs(3),
    };

    /// The most requests a limit may allow in its window.
    pub const MAX_REQUESTS: u32 = 1_000_000;
    /// The longest window.
    pub const MAX_WINDOW: Duration = Duration::from_secs(3600);

    /// `N/Ds` (`3000/3s`), `N/Dms`, or `N/s`: 1 to a million requests in up to an hour.
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let bad = || {
            format!(
                "{text:?} is not a rate such as 3000/3s (1 to {} requests per 1 ms to 3600 s)",
                RateLimit::MAX_REQUESTS
            )
        };
        let (requests, window) = text.split_once('/').ok_or_else(bad)?;
        let requests: u32 = requests
            .parse()
            .ok()
            .filter(|n| (1..=RateLimit::MAX_REQUESTS).contains(n))
            .ok_or_else(bad)?;
        let window = if let Some(ms) = window.strip_suffix("ms") {
            Duration::from_millis(number_or_one(ms).ok_or_else(bad)?)
        } else if let Some(s) = window.strip_suffix('s') {
            Duration::from_secs(number_or_one(s).ok_or_else(bad)?)
        } else {
            return Err(bad());
        };
        if window.is_zero() || window > RateLimit::MAX_WINDOW {
            return Err(bad());
        }
        Ok(RateLimit { requests, window })
    }

    /// The gap between two requests: the window and a hundredth, over the requests.
    pub fn interval(&self) -> Duration {
        (self.window + self.window / 100) / self.requests
    }
}

fn number_or_one(text: &str) -> Option<u64> {
    if text.is_empty() {
        Some(1)
    } else {
        text.parse().ok()
    }
}

/// The moments the last `limit` requests left: the next may leave once the oldest is a window
/// old.
#[derive(Debug)]
pub struct Window {
    limit: usize,
    length: Duration,
    departures: VecDeque<Instant>,
}

impl Window {
    pub fn new(limit: RateLimit) -> Window {
        Window {
            limit: limit.requests as usize,
            length: limit.window,
            departures: VecDeque::new(),
        }
    }

    /// When a request may leave, if not `now`.
    pub fn wait_until(&self, now: Instant) -> Option<Instant> {
        if self.departures.len() < self.limit {
            return None;
        }
        let free = *self.departures.front()? + self.length;
        (free > now).then_some(free)
    }

    /// A request left at `at`.
    pub fn record(&mut self, at: Instant) {
        if self.departures.len() == self.limit {
            self.departures.pop_front();
        }
        self.departures.push_back(at);
    }
}

struct State {
    /// The earliest moment the next turn may be given.
    next: Instant,
    /// Braze said to wait until then: no request leaves before, even one whose turn came.
    paused_until: Instant,
    window: Option<Window>,
}

/// Shared by every sender of one run.
pub struct Limiter {
    /// `None`: no limit (benchmarks against a fake).
    interval: Option<Duration>,
    state: Mutex<State>,
    /// Departures are logged (at debug level) as microseconds since this moment.
    started: Instant,
}

impl Limiter {
    pub fn new(limit: Option<RateLimit>) -> Limiter {
        Limiter {
            interval: limit.map(|l| l.interval()),
            state: Mutex::new(State {
                next: Instant::now(),
                paused_until: Instant::now(),
                window: limit.map(Window::new),
            }),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for this request's turn.
    pub async fn acquire(&self) {
        let turn = {
            let mut state = self.lock();
            let turn = state.next.max(Instant::now());
            state.next = turn + self.interval.unwrap_or_default();
            turn
        };
        // A timer would round up to the next millisecond: only wait when there is a wait.
        if turn > Instant::now() {
            tokio::time::sleep_until(turn).await;
        }
        loop {
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                if state.paused_until > now {
                    state.paused_until
                } else if let Some(window) = state.window.as_mut() {
                    match window.wait_until(now) {
                        None => {
                            window.record(now);
                            // What the rate limit counts, for anyone checking it against Braze's
                            // rule.
                            tracing::debug!(
                                departure_us = now.duration_since(self.started).as_micros() as u64,
                                "a request leaves"
                            );
                            return;
                        }
                        Some(until) => until,
                    }
                } else {
                    return;
                }
            };
            tokio::time::sleep_until(wait).await;
        }
    }

    /// No request goes before `until` (Braze answered 429, or said its window has no requests
    /// left, and when it resets).
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.lock();
        state.next = state.next.max(until);
        state.paused_until = state.paused_until.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_the_forms_people_write() {
        assert_eq!(RateLimit::parse("3000/3s"), Ok(RateLimit::BRAZE_DEFAULT));
        // Absurd values are an error, never an overflow.
        for absurd in [
            "4294967295/18446744073709551615s",
            "1/18446744073709551615ms",
            "1000001/1s",
            "1/3601s",
        ] {
            let err = RateLimit::parse(absurd).unwrap_err();
            assert!(err.contains("3000/3s"), "{err}");
        }
        let slowest = RateLimit::parse("1/3600s").unwrap();
        assert!(slowest.interval() > slowest.window);
        assert_eq!(
            RateLimit::parse("50/500ms").map(|r| r.window),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            RateLimit::parse("10/s").map(|r| r.window),
            Ok(Duration::from_secs(1))
        );
        for bad in ["3000", "0/3s", "3000/0s", "x/3s", "3000/3m", "-1/3s"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_ever_holds_the_limit_and_a_pause_holds_everyone() {
        let limit = RateLimit::parse("20/1s").unwrap();
        let limiter = Limiter::new(Some(limit));
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..100 {
            limiter.acquire().await;
            sent.push(Instant::now() - start);
        }
        // Any 21 consecutive requests span more than the window.
        for pair in sent.windows(21) {
            assert!(pair[20] - pair[0] > limit.window, "{pair:?}");
        }
        // ...but not by much: the rate is 99% of the limit (timers round up to the millisecond).
        let ideal = limit.interval() * 99;
        assert!(sent[99] >= ideal && sent[99] - ideal <= Duration::from_millis(1));

        let resume = Instant::now() + Duration::from_secs(5);
        limiter.pause_until(resume);
        limiter.acquire().await;
        assert_eq!(Instant::now(), resume);
    }

    #[test]
    fn a_late_departure_holds_the_next_window_back() {
        // 20 a second. The first request's timer fired 40 ms late; the 21st's is on time at
        // 1,010 ms. Spacing alone would send it with 20 others in the window since 40 ms.
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let mut window = Window::new(RateLimit::parse("20/1s").unwrap());
        window.record(ms(40));
        for n in 1..20 {
            assert_eq!(window.wait_until(ms(40 + n * 50)), None);
            window.record(ms(40 + n * 50));
        }
        assert_eq!(window.wait_until(ms(1010)), Some(ms(1040)));
        assert_eq!(window.wait_until(ms(1040)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_requests_whose_turn_was_already_given() {
        let limiter = std::sync::Arc::new(Limiter::new(Some(RateLimit::parse("10/1s").unwrap())));
        let start = Instant::now();
        limiter.acquire().await;
        // The next request has its turn (101 ms from now) and sleeps; then Braze says to wait.
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            async move {
                limiter.acquire().await;
                Instant::now()
            }
        });
        tokio::task::yield_now().await;
        limiter.pause_until(start + Duration::from_secs(2));
        assert_eq!(waiting.await.unwrap(), start + Duration::from_secs(2));
        // Without a limit, a pause holds everyone too.
        let unlimited = Limiter::new(None);
        let until = Instant::now() + Duration::from_secs(1);
        unlimited.pause_until(until);
        unlimited.acquire().await;
        assert_eq!(Instant::now(), until);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_limit_nothing_waits() {
        let limiter = Limiter::new(None);
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire().await;
        }
        assert_eq!(Instant::now(), start);
    }
}
