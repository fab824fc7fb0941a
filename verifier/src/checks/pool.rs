//! Threads made before the loader thread starts loading libraries.
//!
//! glibc's `pthread_create` takes the dynamic loader's TLS lock, and
//! `dlopen` holds that lock for the whole load of a library. With a cold
//! page cache, loading cuBLAS takes hundreds of milliseconds, and every
//! thread started meanwhile waits for it: the GPU thread could not create
//! its context until cuBLAS was in (a first start measured 294 ms lost
//! there). So the threads the GPU checks need are made first, each waiting
//! for one piece of work, and the loader starts after them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::Scope;

type Work<'env> = Box<dyn FnOnce() + Send + 'env>;

/// A thread that has not been given its work yet. Dropping it lets the
/// thread end.
pub struct Worker<'env>(mpsc::Sender<Work<'env>>);

/// Makes `n` idle threads in `scope`.
pub fn workers<'scope, 'env>(scope: &'scope Scope<'scope, 'env>, n: usize) -> Vec<Worker<'env>> {
    (0..n)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<Work<'env>>();
            scope.spawn(move || {
                if let Ok(work) = rx.recv() {
                    work();
                }
            });
            Worker(tx)
        })
        .collect()
}

/// The result of work handed to a thread.
pub enum Handle<T> {
    /// Still running on its thread.
    Running(mpsc::Receiver<std::thread::Result<T>>),
    /// Ran on the calling thread.
    Done(std::thread::Result<T>),
}

impl<T> Handle<T> {
    /// Waits for the result; a panic in the work comes back as `Err`.
    pub fn join(self) -> std::thread::Result<T> {
        match self {
            Handle::Done(r) => r,
            Handle::Running(rx) => rx
                .recv()
                .unwrap_or_else(|_| Err(Box::new("the worker thread stopped"))),
        }
    }
}

/// Runs `f` on `worker`, or on this thread when there is none (a machine
/// with more GPUs than device nodes counted at start-up).
pub fn run<'env, T: Send + 'env>(
    worker: Option<Worker<'env>>,
    f: impl FnOnce() -> T + Send + 'env,
) -> Handle<T> {
    let Some(Worker(tx)) = worker else {
        return Handle::Done(catch_unwind(AssertUnwindSafe(f)));
    };
    let (rtx, rrx) = mpsc::channel();
    let work: Work<'env> = Box::new(move || {
        let _ = rtx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match tx.send(work) {
        Ok(()) => Handle::Running(rrx),
        // The thread is gone (it cannot be: it waits for exactly this);
        // run the work here rather than lose it.
        Err(mpsc::SendError(work)) => {
            work();
            Handle::Running(rrx)
        }
    }
}

/// Threads for each GPU: the GPU's own and one per side-by-side task group.
pub const PER_GPU: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_prepared_threads_and_inline_without_one() {
        let data = [1u32, 2, 3];
        std::thread::scope(|s| {
            let mut ws = workers(s, 2);
            let here = std::thread::current().id();
            let a = run(ws.pop(), || {
                (data.iter().sum::<u32>(), std::thread::current().id())
            });
            let b = run(ws.pop(), || panic!("boom"));
            let c = run(None, || std::thread::current().id());
            let (sum, id) = a.join().unwrap();
            assert_eq!(sum, 6);
            assert_ne!(id, here);
            assert!(b.join().is_err());
            assert_eq!(c.join().unwrap(), here);
        });
    }

    #[test]
    fn unused_workers_end_when_dropped() {
        std::thread::scope(|s| {
            let ws = workers(s, 3);
            drop(ws);
        });
    }
}
