//! A small ordered work pool: items are produced one at a time on the
//! calling thread and handed to a bounded number of worker threads; the
//! results come back in production order. Used to write several layers at
//! once: the image's layer order never depends on which layer ends first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Produces `n` items with `produce` (on the calling thread, in index order)
/// and runs `work` on each of them on up to `workers` threads. Returns the
/// results in index order, or the error of the lowest index that failed.
///
/// At most `workers` items are being worked on while the next one is
/// produced, so memory stays bounded. After a failure no further item is
/// produced; items already handed out are finished. Failures are therefore
/// reported as a sequential loop would report them: every index below the
/// first failing one has been produced and worked on, whatever the timing.
/// With one worker everything runs on the calling thread, one item after
/// the other.
pub fn run_ordered<T, R, E>(
    n: usize,
    workers: usize,
    mut produce: impl FnMut(usize) -> Result<T, E>,
    work: impl Fn(usize, T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E>
where
    T: Send,
    R: Send,
    E: Send,
{
    let workers = workers.clamp(1, n.max(1));
    if workers == 1 {
        return (0..n).map(|i| produce(i).and_then(|t| work(i, t))).collect();
    }
    let mut slots: Vec<Option<Result<R, E>>> = (0..n).map(|_| None).collect();
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        // A rendezvous channel: an item is produced only when a worker is
        // free to take it (plus the one in hand).
        let (tx, rx) = mpsc::sync_channel::<(usize, T)>(0);
        // Each worker owns a handle on the receiver: when every worker has
        // ended (even by a panic) the channel closes and `send` fails
        // instead of blocking forever.
        let rx = Arc::new(Mutex::new(rx));
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let rx = Arc::clone(&rx);
                let (work, failed) = (&work, &failed);
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((i, item)) = next else { break };
                        let r = work(i, item);
                        if r.is_err() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        done.push((i, r));
                    }
                    done
                })
            })
            .collect();
        drop(rx);
        // `i` is also the item's index for `produce` and the workers, not only for `slots`.
        #[allow(clippy::needless_range_loop)]
        for i in 0..n {
            if failed.load(Ordering::SeqCst) {
                break;
            }
            match produce(i) {
                Ok(item) => {
                    if tx.send((i, item)).is_err() {
                        break; // every worker ended (a panic, re-raised below)
                    }
                }
                Err(e) => {
                    slots[i] = Some(Err(e));
                    break;
                }
            }
        }
        drop(tx);
        for h in handles {
            match h.join() {
                Ok(done) => {
                    for (i, r) in done {
                        slots[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let mut out = Vec::with_capacity(n);
    for (i, slot) in slots.into_iter().enumerate() {
        match slot {
            Some(Ok(r)) => out.push(r),
            Some(Err(e)) => return Err(e),
            // Production stops only after a failure, and every index below
            // the production point was handed out and finished.
            None => unreachable!("item {i} was neither finished nor failed, and no earlier item failed"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn results_keep_production_order_whatever_finishes_first() {
        for workers in [1, 2, 3, 8, 100] {
            let got = run_ordered(
                20,
                workers,
                |i| Ok::<_, String>(i * 10),
                |i, v| {
                    // Early items take longest, so later ones finish first.
                    std::thread::sleep(Duration::from_millis(((20 - i) % 5) as u64));
                    Ok(v + 1)
                },
            )
            .unwrap();
            assert_eq!(got, (0..20).map(|i| i * 10 + 1).collect::<Vec<_>>(), "{workers} workers");
        }
        assert!(run_ordered(0, 4, Ok::<_, ()>, |_, v| Ok(v)).unwrap().is_empty());
    }

    #[test]
    fn work_really_runs_on_several_threads_at_once() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        run_ordered(8, 4, Ok::<_, ()>, |_, _| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        let peak = peak.load(Ordering::SeqCst);
        assert!((2..=4).contains(&peak), "peak concurrency {peak}");
    }

    #[test]
    fn the_lowest_failing_index_is_reported_and_production_stops() {
        for workers in [1, 2, 4] {
            let produced = AtomicUsize::new(0);
            let e = run_ordered(
                100,
                workers,
                |i| {
                    produced.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(i)
                },
                |i, _| {
                    // Index 7 fails slowly, 9 fails at once: 7 must win.
                    if i == 7 {
                        std::thread::sleep(Duration::from_millis(50));
                        return Err("seven".to_string());
                    }
                    if i == 9 {
                        return Err("nine".to_string());
                    }
                    Ok(i)
                },
            )
            .unwrap_err();
            assert_eq!(e, "seven", "{workers} workers");
            assert!(produced.load(Ordering::SeqCst) < 100, "production must stop after a failure");
        }
    }

    #[test]
    fn a_production_error_is_reported_unless_an_earlier_item_failed() {
        for workers in [1, 3] {
            let e = run_ordered(
                10,
                workers,
                |i| if i == 4 { Err(format!("make {i}")) } else { Ok(i) },
                |_, v| Ok::<_, String>(v),
            )
            .unwrap_err();
            assert_eq!(e, "make 4");
            let e = run_ordered(
                10,
                workers,
                |i| if i == 4 { Err(format!("make {i}")) } else { Ok(i) },
                |i, v| if i == 2 { Err(format!("work {i}")) } else { Ok(v) },
            )
            .unwrap_err();
            assert_eq!(e, "work 2");
        }
    }

    #[test]
    fn a_panicking_worker_does_not_hang_the_producer() {
        let r =
            std::panic::catch_unwind(|| run_ordered(50, 2, Ok::<_, ()>, |_, _| -> Result<(), ()> { panic!("boom") }));
        assert!(r.is_err());
    }
}
