//! The one retry policy: which failures are transient, how long to wait
//! between attempts, and when to stop.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use tracing::debug;

/// How an attempt failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// Worth another attempt (after the server's `Retry-After`, when given).
    Retry(E, Option<Duration>),
    /// Final.
    Fatal(E),
}

impl<E> Failure<E> {
    /// The error.
    pub fn into_inner(self) -> E {
        match self {
            Failure::Retry(e, _) | Failure::Fatal(e) => e,
        }
    }
}

/// How many attempts, and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub retries: u32,
    /// First wait; doubles each retry (±25 % jitter), at most `max_wait`.
    pub backoff: Duration,
    /// The longest wait between attempts (also caps `Retry-After`).
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // STRATA_RETRY_BASE_MS shortens the backoff (tests use it).
        let base = std::env::var("STRATA_RETRY_BASE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
        RetryPolicy { retries: 4, backoff: Duration::from_millis(base), max_wait: Duration::from_secs(60) }
    }
}

impl RetryPolicy {
    /// The policy with `retries` extra attempts.
    pub fn with_retries(self, retries: u32) -> RetryPolicy {
        RetryPolicy { retries, ..self }
    }

    /// The wait before attempt `attempt + 1`, or why there is none.
    pub fn next_wait(
        &self,
        attempt: u32,
        started: Instant,
        deadline: Duration,
        after: Option<Duration>,
    ) -> Result<Duration, Stop> {
        if attempt > self.retries {
            return Err(Stop::Attempts);
        }
        if started.elapsed() >= deadline {
            return Err(Stop::Deadline(deadline));
        }
        let exp = self.backoff.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(10)).min(self.max_wait);
        // ±25 % jitter so parallel transfers do not retry in lockstep.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let jitter = 0.75 + f64::from(nanos % 1000) / 2000.0;
        Ok(after.map(|a| a.min(self.max_wait)).unwrap_or_else(|| exp.mul_f64(jitter)))
    }
}

/// Why an operation is not attempted again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Every attempt was made.
    Attempts,
    /// The operation's deadline passed.
    Deadline(Duration),
}

/// ` (after N attempts)`, plus the deadline when that is what ended them.
pub fn gave_up_note(attempts: u32, deadline: Option<Duration>) -> String {
    match deadline {
        Some(d) => format!(
            " (after {attempts} attempt{} in {}s, the deadline; STRATA_NET_DEADLINE sets it)",
            if attempts == 1 { "" } else { "s" },
            d.as_secs_f64().round()
        ),
        None => attempts_note(attempts),
    }
}

/// Statuses worth another attempt: timeouts, rate limits and server
/// errors other than "not implemented" and "version not supported".
pub fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (status >= 500 && status != 501 && status != 505)
}

/// `Retry-After`: seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = u64::try_from(crate::time::parse_rfc2822_utc(v)?).ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// ` (after N attempts)` when there was more than one.
pub fn attempts_note(n: u32) -> String {
    if n > 1 {
        format!(" (after {n} attempts)")
    } else {
        String::new()
    }
}

/// Errors that record how many attempts were made.
pub trait Attempts {
    /// Sets the count.
    fn set_attempts(&mut self, n: u32);
    /// Records that the deadline ended the attempts.
    fn set_deadline(&mut self, _deadline: Duration) {}
}

impl Attempts for super::NetError {
    fn set_attempts(&mut self, n: u32) {
        if let super::NetError::Status { attempts, .. } | super::NetError::Transport { attempts, .. } = self {
            *attempts = n;
        }
    }
    fn set_deadline(&mut self, d: Duration) {
        if let super::NetError::Transport { deadline, .. } = self {
            *deadline = Some(d);
        }
    }
}

/// Runs `f` (given the attempt number, from 1) until it succeeds, fails for
/// good, attempts run out or `deadline` passes. `on_retry` hears a line
/// for each retry (the error's first line and the wait).
pub async fn run<T, E, F, Fut>(
    policy: &RetryPolicy,
    deadline: Duration,
    op: &str,
    on_retry: &(dyn Fn(&str) + Sync),
    mut f: F,
) -> Result<T, E>
where
    E: std::fmt::Display + Attempts,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure<E>>>,
{
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f(attempt).await {
            Ok(v) => return Ok(v),
            Err(Failure::Fatal(mut e)) => {
                e.set_attempts(attempt);
                return Err(e);
            }
            Err(Failure::Retry(mut e, after)) => {
                let wait = match policy.next_wait(attempt, started, deadline, after) {
                    Ok(w) => w,
                    Err(stop) => {
                        e.set_attempts(attempt);
                        if let Stop::Deadline(d) = stop {
                            e.set_deadline(d);
                        }
                        return Err(e);
                    }
                };
                debug!(operation = op, attempt, wait_ms = wait.as_millis() as u64, "retrying");
                let text = e.to_string();
                on_retry(&format!(
                    "{} — retrying in {:.1}s (attempt {} of {})",
                    text.lines().next().unwrap_or(&text),
                    wait.as_secs_f64(),
                    attempt + 1,
                    policy.retries + 1
                ));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses_worth_retrying() {
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(transient_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 413, 416, 501, 505] {
            assert!(!transient_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn waits_grow_and_stop_at_the_limits() {
        let p = RetryPolicy { retries: 3, backoff: Duration::from_millis(100), max_wait: Duration::from_millis(250) };
        let now = Instant::now();
        let long = Duration::from_secs(60);
        let w1 = p.next_wait(1, now, long, None).unwrap();
        assert!(w1 >= Duration::from_millis(75) && w1 <= Duration::from_millis(125), "{w1:?}");
        assert!(p.next_wait(3, now, long, None).unwrap() <= Duration::from_millis(250 * 5 / 4));
        assert_eq!(p.next_wait(2, now, long, Some(Duration::from_secs(9))), Ok(Duration::from_millis(250)));
        assert_eq!(p.next_wait(4, now, long, None), Err(Stop::Attempts));
        let one = Duration::from_secs(1);
        assert_eq!(p.next_wait(1, now - Duration::from_secs(2), one, None), Err(Stop::Deadline(one)));
    }
}
