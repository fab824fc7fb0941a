//! An optional timeline of the run, for finding where start-up time goes:
//! with `STRATA_VERIFY_TRACE=1` the binary prints, after the report, when
//! each step began and ended and on which thread. Off, a mark costs one
//! relaxed atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

static ON: AtomicBool = AtomicBool::new(false);
static START: OnceLock<Instant> = OnceLock::new();
static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());

/// One mark.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Milliseconds since [`enable`]'s `start`.
    pub at_ms: f64,
    /// Which thread: `main`, `loader`, `gpu0`, `gpu0/blas`, ...
    pub thread: &'static str,
    /// What happened.
    pub what: String,
}

/// Starts recording; times are counted from `start` (the process start).
pub fn enable(start: Instant) {
    let _ = START.set(start);
    ON.store(true, Ordering::Relaxed);
}

/// True while recording.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Records `what` (built only when recording).
pub fn mark(thread: &'static str, what: impl FnOnce() -> String) {
    if !enabled() {
        return;
    }
    let at_ms = START
        .get()
        .map(|s| s.elapsed().as_secs_f64() * 1e3)
        .unwrap_or(0.0);
    let e = Event {
        at_ms,
        thread,
        what: what(),
    };
    EVENTS.lock().unwrap_or_else(|p| p.into_inner()).push(e);
}

/// The marks so far, in time order.
pub fn take() -> Vec<Event> {
    let mut v = std::mem::take(&mut *EVENTS.lock().unwrap_or_else(|p| p.into_inner()));
    v.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    v
}

/// Thread labels for GPU `ordinal` (up to 16 GPUs get their own; the rest
/// share the last).
pub fn gpu_label(ordinal: i32, part: usize) -> &'static str {
    const LABELS: [[&str; 4]; 16] = {
        macro_rules! row {
            ($n:literal) => {
                [
                    concat!("gpu", $n),
                    concat!("gpu", $n, "/blas"),
                    concat!("gpu", $n, "/lt"),
                    concat!("gpu", $n, "/sm90"),
                ]
            };
        }
        [
            row!(0),
            row!(1),
            row!(2),
            row!(3),
            row!(4),
            row!(5),
            row!(6),
            row!(7),
            row!(8),
            row!(9),
            row!(10),
            row!(11),
            row!(12),
            row!(13),
            row!(14),
            row!(15),
        ]
    };
    LABELS[(ordinal.max(0) as usize).min(15)][part.min(3)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_kept_in_time_order_only_when_on() {
        // Other tests of this process may add marks once recording is on;
        // only this test's own are looked at.
        let ours = |v: Vec<Event>| -> Vec<Event> {
            v.into_iter()
                .filter(|e| e.what.starts_with("trace-test"))
                .collect()
        };
        mark("main", || "trace-test before".into());
        assert!(ours(take()).is_empty());
        enable(Instant::now());
        mark("main", || "trace-test one".into());
        mark(gpu_label(1, 1), || "trace-test two".into());
        let events = ours(take());
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].thread, "gpu1/blas");
        assert!(events[0].at_ms <= events[1].at_ms);
        assert_eq!(gpu_label(40, 9), "gpu15/sm90");
    }
}
