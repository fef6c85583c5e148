//! The display's public face: the state shared between the worker and its readers, the events
//! it publishes, and [`DisplayHandle`], through which SPICE sessions read it.
//!
//! # How a reader stays consistent
//! 1. [`DisplayHandle::subscribe`] first, then read state ([`DisplayHandle::surfaces`],
//!    [`DisplayHandle::snapshot`], [`DisplayHandle::cursor`]).
//! 2. Every change bumps one global generation under the state lock, and its event is sent
//!    after the lock is released. So an event for a surface whose `generation` is at most the
//!    one its snapshot carried is already in the snapshot (skip it); a later one is news.
//! 3. On [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged) the events
//!    missed are gone: resync from snapshots (re-read every surface, or mark them all dirty),
//!    never just resume.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::cursor::{CursorEvent, CursorState};
use super::source::{CommandSource, Head, Point, Rect};
use super::surface::{Surface, SurfaceFormat};
use super::tiles::TileVersions;
use super::worker;

/// Events a subscriber may fall behind by before it lags and must resync. A guest at 60 frames
/// a second with ~10 draws a frame fills it in under two seconds: a subscriber that far behind
/// is better served by fresh snapshots than by replaying stale damage.
pub const EVENT_CAPACITY: usize = 1024;

/// What a surface is, without its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SurfaceInfo {
    /// 0 is the primary.
    pub surface_id: u32,
    pub width: u32,
    pub height: u32,
    pub format: SurfaceFormat,
    /// The generation of the surface's last change.
    pub generation: u64,
}

impl SurfaceInfo {
    /// Bytes per row of its pixels (32 bits per pixel, rows unpadded).
    pub fn stride(&self) -> usize {
        usize::try_from(self.width)
            .unwrap_or(usize::MAX)
            .saturating_mul(4)
    }
}

/// A consistent copy of one surface: `pixels` are as of `info.generation`.
#[derive(Clone, Debug)]
pub struct SurfaceSnapshot {
    pub info: SurfaceInfo,
    /// Bytes per row.
    pub stride: usize,
    /// Rows top-down, 32-bit little-endian pixels (bytes B, G, R, X/A).
    pub pixels: Arc<[u8]>,
}

/// What one read of a surface rectangle saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RectVersion {
    /// The display's generation when it was read: every event up to it is in the pixels.
    pub generation: u64,
    /// The generation of the newest change to the rectangle's pixels (by 64 × 64 tiles):
    /// two reads of one rectangle of one surface with the same `content` saw the same bytes.
    pub content: u64,
}

/// A change to the display, in the order the worker made them. One draw may give several,
/// each with its own generation: a scroll the worker found in a redraw is a `CopyBits` then
/// `Damage` for the rows it did not cover; a redraw that changes nothing gives none.
#[derive(Clone, Debug, PartialEq)]
pub enum DisplayEvent {
    /// A surface appeared (or was replaced: a `SurfaceDestroyed` for its id comes first).
    SurfaceCreated(SurfaceInfo),
    SurfaceDestroyed {
        surface_id: u32,
        generation: u64,
    },
    /// Pixels of `rect` changed: re-read them.
    Damage {
        surface_id: u32,
        rect: Rect,
        generation: u64,
    },
    /// `dest` now holds what was at `src` (its top-left corner) just before: exact, unclipped
    /// and inside the surface, so a client may replay it as SPICE's COPY_BITS, provided its
    /// copy of the source area is current as of `generation - 1`. A client with damage still
    /// pending there treats it as `Damage` of `dest` instead.
    CopyBits {
        surface_id: u32,
        src: Point,
        dest: Rect,
        generation: u64,
    },
    Cursor(CursorEvent),
    /// The guest's monitor layout changed (see [`DisplayHandle::monitors`]).
    MonitorsConfig {
        heads: Arc<[Head]>,
        generation: u64,
    },
    /// Every surface, the cursor and the monitor layout are gone (device reset).
    Reset {
        generation: u64,
    },
}

/// One surface and the generation of its last change.
pub(crate) struct Entry {
    pub(crate) surface: Surface,
    pub(crate) generation: u64,
    /// The generation of the last change to each tile.
    tiles: TileVersions,
}

impl Entry {
    /// A surface created at `generation`.
    pub(crate) fn new(surface: Surface, generation: u64) -> Self {
        let tiles = TileVersions::new(surface.width(), surface.height(), generation);
        Self {
            surface,
            generation,
            tiles,
        }
    }

    /// Records that the pixels of `rect` changed at `generation`.
    pub(crate) fn changed(&mut self, rect: &Rect, generation: u64) {
        self.generation = generation;
        self.tiles.mark(rect, generation);
    }

    fn rect_version(&self, rect: &Rect, generation: u64) -> Option<RectVersion> {
        (!rect.is_empty() && self.surface.bounds().contains(rect)).then(|| RectVersion {
            generation,
            content: self.tiles.version(rect),
        })
    }

    pub(crate) fn info(&self, surface_id: u32) -> SurfaceInfo {
        SurfaceInfo {
            surface_id,
            width: self.surface.width(),
            height: self.surface.height(),
            format: self.surface.format(),
            generation: self.generation,
        }
    }
}

/// Everything readers can see.
pub(crate) struct State {
    pub(crate) surfaces: BTreeMap<u32, Entry>,
    pub(crate) cursor: CursorState,
    /// The latest monitor layout, empty until the guest sends one.
    pub(crate) monitors: Arc<[Head]>,
    pub(crate) generation: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            surfaces: BTreeMap::new(),
            cursor: CursorState::default(),
            monitors: Arc::new([]),
            generation: 0,
        }
    }
}

/// What the worker thread and the handles share.
pub(crate) struct Shared {
    /// A `RwLock` held for one draw by the worker or one copy by a reader, never across a
    /// send, a callback or a wait: the worker never waits on a client for longer than one
    /// snapshot copy (~2 ms for 1920 × 1080), and readers copy in parallel.
    pub(crate) state: RwLock<State>,
    /// The generation whose event has been sent. Apart from `state` so that waiters hold no
    /// lock the worker needs; `changed` is signalled on every update.
    published: Mutex<u64>,
    changed: Condvar,
    /// Threads in `wait_generation` / `wait_until`, counted before they take `published`:
    /// with none (the server's steady state), a change costs the worker no wake syscall.
    waiters: AtomicUsize,
    events: broadcast::Sender<DisplayEvent>,
    /// Cursor and reset events only, for readers that need nothing else (a SPICE cursor
    /// channel): drawing, by far the most frequent change, does not wake them.
    cursor_events: broadcast::Sender<DisplayEvent>,
    pub(crate) stop: AtomicBool,
}

impl Shared {
    fn new() -> Self {
        Self {
            state: RwLock::new(State::default()),
            published: Mutex::new(0),
            changed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            events: broadcast::channel(EVENT_CAPACITY).0,
            cursor_events: broadcast::channel(EVENT_CAPACITY).0,
            stop: AtomicBool::new(false),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves state that is still memory-safe to
        // read; readers keep going rather than panic in turn.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `events` in order (no subscriber is fine), then wakes the waiters on the newest
    /// generation among them.
    pub(crate) fn publish(&self, events: impl IntoIterator<Item = (DisplayEvent, u64)>) {
        let mut newest = None;
        for (event, generation) in events {
            if matches!(event, DisplayEvent::Cursor(_) | DisplayEvent::Reset { .. }) {
                let _ = self.cursor_events.send(event.clone());
            }
            let _ = self.events.send(event);
            newest = newest.max(Some(generation));
        }
        let Some(generation) = newest else {
            return;
        };
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *published = (*published).max(generation);
        // Read under `published`: a waiter counted itself before taking it, so either it
        // sees this generation when it checks, or it is counted here and woken.
        let waiting = self.waiters.load(Ordering::SeqCst) > 0;
        drop(published);
        if waiting {
            self.changed.notify_all();
        }
    }

    /// Counts the caller among the waiters until the guard drops.
    fn waiting(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(&self.waiters)
    }
}

/// One thread counted in [`Shared::waiters`].
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The handle the SPICE server and tests hold; clones share one worker. Dropping the last
/// clone stops and joins the worker, as [`DisplayHandle::shutdown`] does.
#[derive(Clone)]
pub struct DisplayHandle {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        stop_and_join(&self.shared, &self.thread);
    }
}

fn stop_and_join(shared: &Shared, thread: &Mutex<Option<JoinHandle<()>>>) {
    shared.stop.store(true, Ordering::Release);
    let handle = thread.lock().unwrap_or_else(PoisonError::into_inner).take();
    let Some(handle) = handle else {
        return;
    };
    // A completion callback holding the last handle would drop it on the worker itself.
    if handle.thread().id() == thread::current().id() {
        return;
    }
    if handle.join().is_err() {
        tracing::error!("The display worker thread panicked");
    }
}

/// Starts the display worker on its own thread.
///
/// # Panics
/// If the OS cannot start a thread; use [`try_spawn`] to handle that.
pub fn spawn<S: CommandSource + 'static>(source: S) -> DisplayHandle {
    try_spawn(source).expect("the OS can start the display worker thread")
}

/// Starts the display worker on its own thread.
pub fn try_spawn<S: CommandSource + 'static>(source: S) -> io::Result<DisplayHandle> {
    let shared = Arc::new(Shared::new());
    let worker_shared = Arc::clone(&shared);
    let thread = thread::Builder::new()
        .name("display-worker".into())
        .spawn(move || worker::run(source, &worker_shared))?;
    Ok(DisplayHandle {
        inner: Arc::new(Inner {
            shared,
            thread: Mutex::new(Some(thread)),
        }),
    })
}

impl DisplayHandle {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Events from now on. Bounded by [`EVENT_CAPACITY`]: on `Lagged`, resync from snapshots
    /// (see the module documentation).
    pub fn subscribe(&self) -> broadcast::Receiver<DisplayEvent> {
        self.shared().events.subscribe()
    }

    /// [`DisplayEvent::Cursor`] and [`DisplayEvent::Reset`] events from now on, as
    /// [`DisplayHandle::subscribe`] delivers them (same order, same lag rule), and no others.
    pub fn subscribe_cursor(&self) -> broadcast::Receiver<DisplayEvent> {
        self.shared().cursor_events.subscribe()
    }

    /// Every surface, by id.
    pub fn surfaces(&self) -> Vec<SurfaceInfo> {
        let state = self.shared().read();
        state.surfaces.iter().map(|(&id, e)| e.info(id)).collect()
    }

    /// A copy of one surface, consistent as of its generation.
    pub fn snapshot(&self, surface_id: u32) -> Option<SurfaceSnapshot> {
        let state = self.shared().read();
        let entry = state.surfaces.get(&surface_id)?;
        Some(SurfaceSnapshot {
            info: entry.info(surface_id),
            stride: entry.surface.stride(),
            pixels: Arc::from(entry.surface.pixels()),
        })
    }

    /// The pixels of `rect` (rows top-down, `width × 4` bytes each) and the surface's
    /// generation; `None` if the surface is gone or `rect` is empty or not inside it.
    pub fn snapshot_rect(&self, surface_id: u32, rect: Rect) -> Option<(u64, Vec<u8>)> {
        let state = self.shared().read();
        let entry = state.surfaces.get(&surface_id)?;
        Some((entry.generation, entry.surface.read_rect(rect)?))
    }

    /// The version of `rect`'s pixels now, without reading them; `None` if the surface is
    /// gone or `rect` is empty or not inside it.
    pub fn rect_version(&self, surface_id: u32, rect: Rect) -> Option<RectVersion> {
        let state = self.shared().read();
        state
            .surfaces
            .get(&surface_id)?
            .rect_version(&rect, state.generation)
    }

    /// Appends the pixels of `rect` to `out` as 24-bit B, G, R rows of `stride` bytes (the
    /// fourth byte of each pixel dropped, row padding zeroed), copied under the lock the
    /// worker writes under, so the bytes are exactly those of the version returned. `None`
    /// (nothing appended) if the surface is gone, `rect` is not inside it, or `stride` is
    /// shorter than a row.
    pub fn read_rect_bgr(
        &self,
        surface_id: u32,
        rect: Rect,
        stride: usize,
        out: &mut Vec<u8>,
    ) -> Option<RectVersion> {
        let state = self.shared().read();
        let entry = state.surfaces.get(&surface_id)?;
        let version = entry.rect_version(&rect, state.generation)?;
        entry.surface.read_rect_bgr(rect, stride, out)?;
        Some(version)
    }

    pub fn cursor(&self) -> CursorState {
        self.shared().read().cursor.clone()
    }

    /// The guest's latest monitor layout (empty until it sends one).
    pub fn monitors(&self) -> Arc<[Head]> {
        Arc::clone(&self.shared().read().monitors)
    }

    /// The generation of the latest change.
    pub fn generation(&self) -> u64 {
        self.shared().read().generation
    }

    /// Blocks until the event of generation `min` (or later) has been published, or `timeout`
    /// passes; true if it has. For tests and the daemon's own checks, never for async code.
    pub fn wait_generation(&self, min: u64, timeout: Duration) -> bool {
        let shared = self.shared();
        let _waiting = shared.waiting();
        let published = shared
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (published, _) = shared
            .changed
            .wait_timeout_while(published, timeout, |g| *g < min)
            .unwrap_or_else(PoisonError::into_inner);
        *published >= min
    }

    /// Blocks until `pred` holds, re-checking after every published change, or until
    /// `timeout` passes; returns the last answer of `pred`.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&DisplayHandle) -> bool) -> bool {
        // `None`: the timeout reaches past what `Instant` can represent; wait without end.
        let deadline = Instant::now().checked_add(timeout);
        let shared = self.shared();
        let _waiting = shared.waiting();
        loop {
            let seen = *shared
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // `pred` reads state through this handle, so no lock is held while it runs.
            if pred(self) {
                return true;
            }
            let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return false;
            }
            let published = shared
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let _ = shared
                .changed
                .wait_timeout_while(published, left, |g| *g == seen)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stops the worker and waits for its thread to end. Work still in the source is not
    /// taken; an I/O request the worker held is completed with
    /// [`DisplayError::ShuttingDown`](super::DisplayError::ShuttingDown).
    pub fn shutdown(&self) {
        stop_and_join(&self.inner.shared, &self.inner.thread);
    }
}
