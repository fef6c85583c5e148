//! The threads that make large image encodings, so that the connections' runtime thread only
//! frames and writes: a QUIC encoding of a 1080p band takes about 10 ms, which on the runtime
//! thread would hold up every client's input and every other client's updates that long.
//!
//! Jobs come from the pipes (at most one outstanding per display client, so the queue is
//! bounded by the client limit); each job fills an image cache slot that the client waits on
//! without holding its thread. Threads start with the first job and end when the pool is
//! dropped.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing::{error, warn};

/// One encoding to make.
pub type Job = Box<dyn FnOnce() + Send>;

/// Threads at most: encodings of one frame's bands run side by side, and more threads than
/// that only contend with the display worker and the guest.
const MAX_THREADS: usize = 4;

/// The encode pool of one server.
#[derive(Debug, Default)]
pub struct EncodePool {
    /// Started with the first job; `None` if no thread could be started.
    jobs: OnceLock<Option<Sender<Job>>>,
}

impl EncodePool {
    /// Runs `job` on a pool thread, or here if the pool has none (it could not start one).
    pub fn run(&self, job: Job) {
        let sender = self.jobs.get_or_init(start).as_ref();
        if let Some(sender) = sender {
            if let Err(mpsc::SendError(job)) = sender.send(job) {
                job();
            }
        } else {
            job();
        }
    }
}

fn start() -> Option<Sender<Job>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(1, MAX_THREADS);
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let mut started = 0;
    for i in 0..threads {
        let rx = Arc::clone(&rx);
        let spawned = std::thread::Builder::new()
            .name(format!("spice-encode-{i}"))
            .spawn(move || work(&rx));
        match spawned {
            Ok(_) => started += 1,
            Err(e) => warn!(error = %e, "could not start an encode thread"),
        }
    }
    (started > 0).then_some(tx)
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        // One thread waits in `recv` while the others wait for the lock; the lock is given
        // up before the job runs.
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else {
            return;
        };
        // A job that panics finishes its claim with nothing as it unwinds (image_cache.rs),
        // so its waiters go on; the thread goes on too.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            error!("an image encoding panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    fn wait_for(count: &AtomicUsize, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while count.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "jobs did not run");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn jobs_run_off_the_caller_and_side_by_side() {
        let pool = EncodePool::default();
        let done = Arc::new(AtomicUsize::new(0));
        let caller = std::thread::current().id();
        let gate = Arc::new(std::sync::Barrier::new(2));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..2 {
            let (done, gate) = (Arc::clone(&done), Arc::clone(&gate));
            pool.run(Box::new(move || {
                assert_ne!(std::thread::current().id(), caller);
                // Two jobs meet at the barrier only if two threads run them at once.
                if threads >= 2 {
                    gate.wait();
                }
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        wait_for(&done, 2);
    }

    #[test]
    fn a_panicking_job_leaves_the_pool_working() {
        let pool = EncodePool::default();
        let done = Arc::new(AtomicUsize::new(0));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..threads.clamp(1, MAX_THREADS) {
            pool.run(Box::new(|| panic!("encoder bug")));
        }
        let d = Arc::clone(&done);
        pool.run(Box::new(move || {
            d.fetch_add(1, Ordering::SeqCst);
        }));
        wait_for(&done, 1);
    }
}
