//! Bounding a slow body: a server that sends nothing is cut off by the
//! client's idle (read) timeout; one that drip-feeds (a byte every few
//! seconds) resets that timeout forever, so the rate is watched too.

use std::time::{Duration, Instant};

use super::Timeouts;

/// Watches the bytes of one attempt's body: fails when fewer than
/// `min_speed × window` bytes arrived during the last `window` (the idle
/// timeout), once the attempt is at least that old.
#[derive(Debug)]
pub struct SpeedGuard {
    window: Duration,
    min_bytes: u64,
    /// Start of the current window and the bytes seen in it.
    window_start: Instant,
    in_window: u64,
}

impl SpeedGuard {
    /// A guard with the given timeouts, starting now.
    pub fn new(t: &Timeouts) -> SpeedGuard {
        SpeedGuard {
            window: t.idle,
            min_bytes: t.min_speed.saturating_mul(t.idle.as_secs().max(1)),
            window_start: Instant::now(),
            in_window: 0,
        }
    }

    /// Records `n` bytes received; an error when the body is too slow.
    pub fn update(&mut self, n: u64) -> Result<(), TooSlow> {
        self.in_window += n;
        let elapsed = self.window_start.elapsed();
        if elapsed < self.window {
            return Ok(());
        }
        if self.in_window < self.min_bytes {
            return Err(TooSlow {
                bytes: self.in_window,
                seconds: elapsed.as_secs_f64().round() as u64,
                min_speed: self.min_bytes / self.window.as_secs().max(1),
            });
        }
        self.window_start = Instant::now();
        self.in_window = 0;
        Ok(())
    }
}

/// A body that arrives slower than the minimum speed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too slow: {bytes} bytes in the last {seconds}s, less than the minimum {min_speed} bytes per second")]
pub struct TooSlow {
    /// Bytes received in the window.
    pub bytes: u64,
    /// The window's length.
    pub seconds: u64,
    /// The minimum, bytes per second.
    pub min_speed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickle_fails_once_the_window_has_passed() {
        let t = Timeouts { idle: Duration::from_millis(50), min_speed: 1000, ..Timeouts::default() };
        let mut g = SpeedGuard::new(&t);
        assert!(g.update(1).is_ok(), "too early to judge");
        std::thread::sleep(Duration::from_millis(60));
        let e = g.update(1).unwrap_err().to_string();
        assert!(e.contains("too slow: 2 bytes"), "{e}");
        let mut g = SpeedGuard::new(&t);
        std::thread::sleep(Duration::from_millis(60));
        assert!(g.update(5000).is_ok(), "fast enough");
    }
}
