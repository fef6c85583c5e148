//! Device I/O between producer and consumer (QXL's I/O ports as a synchronous request API),
//! and the doorbells both sides wait on.
//!
//! QEMU hw/display/qxl.c `ioport_write`: the guest writes a port and, for the synchronous
//! ports, the write returns once the worker is done. Here the producer posts one request at a
//! time and blocks (bounded) until the consumer's `IoCall::complete`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::IoError;
use crate::types::{Head, Rect, SurfaceCreate};

/// One device I/O request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoRequest {
    /// `QXL_IO_CREATE_PRIMARY`: surface 0 (validated by the consumer before it is handed out).
    CreatePrimary(SurfaceCreate),
    /// `QXL_IO_DESTROY_PRIMARY`: destroy surface 0 and reset the cursor.
    DestroyPrimary,
    /// `QXL_IO_UPDATE_AREA`: finish everything drawn on `area` of `surface_id`.
    UpdateArea { surface_id: u32, area: Rect },
    /// `QXL_IO_FLUSH_RELEASE`: publish the pending release chain. Handled inside the consumer;
    /// never returned by `Consumer::take_io`.
    FlushRelease,
    /// `QXL_IO_RESET`: forget every surface, the cursor and all guest resources.
    Reset,
    /// `QXL_IO_MONITORS_CONFIG_ASYNC`.
    MonitorsConfig(Vec<Head>),
}

/// A wake-up counter: `ring` bumps it, `wait_past` sleeps until it moves past a seen value.
/// Reading the value *before* re-checking the condition and waiting for a change closes the
/// lost-wake-up window.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    /// Rings so far; the mutex only guards the counter for the condvar.
    seq: Mutex<u64>,
    cv: Condvar,
}

impl Doorbell {
    fn lock(&self) -> MutexGuard<'_, u64> {
        // The counter stays meaningful after a panic elsewhere: recover it.
        self.seq.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn ring(&self) {
        let mut seq = self.lock();
        *seq = seq.wrapping_add(1);
        self.cv.notify_all();
    }

    pub fn seen(&self) -> u64 {
        *self.lock()
    }

    /// Sleeps until the counter differs from `seen` or `timeout` passes; true when it moved.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> bool {
        let deadline = Deadline::after(timeout);
        let mut seq = self.lock();
        while *seq == seen {
            let Some(left) = deadline.left() else {
                return false;
            };
            seq = self
                .cv
                .wait_timeout(seq, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// A point in time `timeout` from now; a timeout too large for `Instant` never expires.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// Time left, `None` once passed.
    pub fn left(&self) -> Option<Duration> {
        match self.0 {
            None => Some(Duration::from_secs(3600)),
            Some(at) => at
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero()),
        }
    }
}

#[derive(Debug, Default)]
struct IoState {
    next_id: u64,
    /// Posted and not yet taken by the consumer.
    pending: Option<(u64, IoRequest)>,
    /// The answer to the request with this id.
    done: Option<(u64, Result<(), IoError>)>,
}

/// The single-request mailbox.
#[derive(Debug, Default)]
pub(crate) struct IoChannel {
    /// Short sections only: post, take, answer.
    state: Mutex<IoState>,
    answered: Condvar,
}

impl IoChannel {
    fn lock(&self) -> MutexGuard<'_, IoState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn post(&self, request: IoRequest) -> u64 {
        let mut st = self.lock();
        st.next_id = st.next_id.wrapping_add(1);
        let id = st.next_id;
        st.pending = Some((id, request));
        st.done = None;
        id
    }

    pub fn has_pending(&self) -> bool {
        self.lock().pending.is_some()
    }

    /// Takes the pending request if `accept` says so.
    pub fn take_if(&self, accept: impl FnOnce(&IoRequest) -> bool) -> Option<(u64, IoRequest)> {
        let mut st = self.lock();
        if st.pending.as_ref().is_some_and(|(_, r)| accept(r)) {
            st.pending.take()
        } else {
            None
        }
    }

    pub fn answer(&self, id: u64, result: Result<(), IoError>) {
        let mut st = self.lock();
        st.done = Some((id, result));
        self.answered.notify_all();
    }

    /// Waits for the answer to `id`. On timeout a request the consumer never took is withdrawn.
    pub fn wait(&self, id: u64, timeout: Duration) -> Option<Result<(), IoError>> {
        let deadline = Deadline::after(timeout);
        let mut st = self.lock();
        loop {
            if let Some((done_id, _)) = &st.done {
                if *done_id == id {
                    return st.done.take().map(|(_, r)| r);
                }
            }
            let Some(left) = deadline.left() else {
                if matches!(&st.pending, Some((p, _)) if *p == id) {
                    st.pending = None;
                }
                return None;
            };
            st = self
                .answered
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A request taken by the consumer. Answer it with `complete`; dropping it answers
/// `IoError::Dropped`, so the producer never waits for a request nobody holds.
#[derive(Debug)]
pub struct IoCall {
    pub request: IoRequest,
    id: u64,
    channel: Option<Arc<crate::Shared>>,
}

impl IoCall {
    pub(crate) fn new(request: IoRequest, id: u64, shared: Arc<crate::Shared>) -> IoCall {
        IoCall {
            request,
            id,
            channel: Some(shared),
        }
    }

    /// Answers the producer blocked in `Producer::io`.
    pub fn complete(mut self, result: Result<(), IoError>) {
        if let Some(shared) = self.channel.take() {
            shared.io.answer(self.id, result);
        }
    }
}

impl Drop for IoCall {
    fn drop(&mut self) {
        if let Some(shared) = self.channel.take() {
            shared.io.answer(self.id, Err(IoError::Dropped));
        }
    }
}
