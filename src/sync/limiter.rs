//! Holds requests under a rate limit such as Braze's 3,000 requests per 3 seconds.
//!
//! Requests are spaced evenly rather than sent in bursts, one hundredth of the window slower than
//! the limit allows: any window then holds fewer than the limit even when the network delays one
//! request and not the next. A 429 pauses every sender until the time Braze named.

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

    /// `N/Ds` (`3000/3s`), `N/Dms`, or `N/s`.
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let bad = || format!("{text:?} is not a rate such as 3000/3s");
        let (requests, window) = text.split_once('/').ok_or_else(bad)?;
        let requests: u32 = requests.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?;
        let window = if let Some(ms) = window.strip_suffix("ms") {
            Duration::from_millis(number_or_one(ms).ok_or_else(bad)?)
        } else if let Some(s) = window.strip_suffix('s') {
            Duration::from_secs(number_or_one(s).ok_or_else(bad)?)
        } else {
            return Err(bad());
        };
        if window.is_zero() {
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

/// Shared by every sender of one run.
pub struct Limiter {
    /// `None`: no limit (benchmarks against a fake).
    interval: Option<Duration>,
    /// The earliest moment the next request may go.
    next: Mutex<Instant>,
}

impl Limiter {
    pub fn new(limit: Option<RateLimit>) -> Limiter {
        Limiter {
            interval: limit.map(|l| l.interval()),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this request's turn.
    pub async fn acquire(&self) {
        let turn = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let turn = (*next).max(Instant::now());
            *next = turn + self.interval.unwrap_or_default();
            turn
        };
        // A timer would round up to the next millisecond: only wait when there is a wait.
        if turn > Instant::now() {
            tokio::time::sleep_until(turn).await;
        }
    }

    /// No request goes before `until` (Braze answered 429 and said when its window resets).
    pub fn pause_until(&self, until: Instant) {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        *next = (*next).max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_the_forms_people_write() {
        assert_eq!(RateLimit::parse("3000/3s"), Ok(RateLimit::BRAZE_DEFAULT));
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
