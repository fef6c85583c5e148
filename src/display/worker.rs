//! The worker thread: takes work from the command source, applies it to the canonical surfaces
//! and cursor, and publishes each change.
//!
//! The worker is the only writer of [`State`]. It waits on nothing but its source: events go
//! into a bounded broadcast channel that drops the oldest for a lagging subscriber, and
//! readers copy under a lock held for one copy.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLockWriteGuard};
use std::time::Duration;

use super::cursor::CursorEvent;
use super::delta::{self, Change, Incoming};
use super::error::DisplayError;
use super::handle::{DisplayEvent, Entry, Shared, State};
use super::pixels::{SourceView, BYTES_PER_PIXEL};
use super::source::{
    Clip, CommandSource, CursorCommand, DrawCommand, DrawOp, Head, Image, IoRequest, Rect,
    SurfaceCommand, Work,
};
use super::surface::{surface_bytes, Surface, SurfaceFormat, MAX_SURFACE_BYTES};
use super::warn_limit::WarnLimit;
use super::{MAX_HEADS, MAX_SURFACES};

/// How long one wait on the source lasts: the bound on how late a shutdown is noticed.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The most bytes all surfaces together may hold (as allocated: `Surface::footprint_of`):
/// two of the largest surface, enough for a full-size primary and as much again in off-screen
/// surfaces. A guest asking for more gets its surface refused instead of growing the process
/// without bound.
pub const MAX_TOTAL_SURFACE_BYTES: usize = 2 * Surface::footprint_of(MAX_SURFACE_BYTES);

/// QXL_DRAW_NOP (QXLDrawable `type` 0): nothing to render, nothing to report.
const DRAW_NOP: u8 = 0;

/// Work items handled back to back before their events go out. A guest pushes a frame as a
/// burst of commands: publishing the burst at once wakes each client once for all of it, and
/// it writes the burst in one go, instead of a wake-up and a socket write per command. The cap
/// bounds how long the first event of a long burst waits for the last.
const MAX_BATCH: usize = 32;

/// Runs until [`Shared::stop`] is set.
pub(crate) fn run<S: CommandSource>(mut source: S, shared: &Shared) {
    let mut worker = Worker {
        shared,
        warnings: WarnLimit::new("Display worker warnings"),
        events: Vec::new(),
    };
    while !shared.stop.load(Ordering::Acquire) {
        let Some(work) = source.next(POLL_INTERVAL) else {
            continue;
        };
        worker.handle(work);
        // What else is ready now joins the batch; nothing is waited for.
        for _ in 1..MAX_BATCH {
            match source.next(Duration::ZERO) {
                Some(work) => worker.handle(work),
                None => break,
            }
        }
        worker.publish();
    }
    tracing::debug!("Display worker stopped");
}

struct Worker<'a> {
    shared: &'a Shared,
    warnings: WarnLimit,
    /// Events of the work in hand, published once the state lock is released.
    events: Vec<(DisplayEvent, u64)>,
}

fn next_generation(state: &mut State) -> u64 {
    // Saturating: 2⁶⁴ changes are never reached, and a generation must never go back.
    state.generation = state.generation.saturating_add(1);
    state.generation
}

impl<'a> Worker<'a> {
    /// Applies `work`; its events wait in `events` for [`Worker::publish`], but an I/O
    /// request's are published before it completes.
    fn handle(&mut self, work: Work) {
        match work {
            Work::Draw(cmd) => {
                let surface_id = cmd.surface_id;
                if let Err(e) = self.draw(cmd) {
                    self.warnings
                        .warn(format_args!("Refused draw on surface {surface_id}: {e}"));
                }
            }
            Work::Surface(SurfaceCommand::Create {
                surface_id,
                format,
                width,
                height,
                initial,
            }) => {
                let format = SurfaceFormat(format);
                if let Err(e) = self.create(surface_id, format, width, height, initial.as_deref()) {
                    self.warnings
                        .warn(format_args!("Refused create of surface {surface_id}: {e}"));
                }
            }
            Work::Surface(SurfaceCommand::Destroy { surface_id }) => {
                if let Err(e) = self.destroy(surface_id) {
                    self.warnings
                        .warn(format_args!("Refused destroy of surface {surface_id}: {e}"));
                }
            }
            Work::Cursor(cmd) => {
                if let Err(e) = self.cursor(cmd) {
                    self.warnings
                        .warn(format_args!("Refused cursor command: {e}"));
                }
            }
            Work::Io(io) => {
                let result = self.io(&io.request);
                if let Err(e) = &result {
                    self.warnings.warn(format_args!("Refused I/O request: {e}"));
                }
                self.publish();
                // After publishing: once the producer resumes, readers see the result.
                io.complete(result);
            }
        }
    }

    fn write(&self) -> RwLockWriteGuard<'a, State> {
        // The worker is the only writer and never panics while holding the lock; if it did,
        // the state is still memory-safe and the display goes on.
        self.shared
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&mut self) {
        self.shared.publish(self.events.drain(..));
    }

    fn draw(&mut self, cmd: DrawCommand) -> Result<(), DisplayError> {
        let DrawCommand {
            surface_id,
            bbox,
            clip,
            op,
        } = cmd;
        let delta = self.changes_of(surface_id, bbox, &clip, &op);
        if delta.as_ref().is_some_and(Vec::is_empty) {
            // The draw would leave every pixel as it is: no change, no event.
            return Ok(());
        }
        let mut guard = self.write();
        let state = &mut *guard;
        // The scale mode is not consulted: every scaled copy is nearest-neighbour.
        let drawn = match op {
            DrawOp::Fill { color, rop } => {
                let target = target(state, surface_id)?;
                target
                    .surface
                    .fill(bbox, &clip, color, rop)?
                    .map(Change::Damage)
            }
            DrawOp::Copy {
                src: Image::Bitmap(bitmap),
                src_area,
                rop,
                scale_mode: _,
            } => {
                let view = SourceView::from_bitmap(&bitmap)?;
                let target = target(state, surface_id)?;
                target
                    .surface
                    .copy(bbox, &clip, &view, src_area, rop)?
                    .map(Change::Damage)
            }
            DrawOp::Copy {
                src: Image::SurfaceImage { surface_id: src_id },
                src_area,
                rop,
                scale_mode: _,
            } => {
                // The part of the source the copy reads, copied out first: the source may be
                // the target itself.
                let src = target(state, src_id)?;
                let Some(part) = src_area.intersect(&src.surface.bounds()) else {
                    return Ok(());
                };
                let alpha = src.surface.format() == SurfaceFormat::ARGB32;
                let pixels = src.surface.read_rect(part).unwrap_or_default();
                let (Ok(w), Ok(h)) = (u32::try_from(part.width()), u32::try_from(part.height()))
                else {
                    return Ok(());
                };
                let stride = usize::try_from(w).unwrap_or(0) * BYTES_PER_PIXEL;
                let view = SourceView::from_surface_pixels(w, h, stride, alpha, &pixels);
                let Some(area) = src_area.translate(-i64::from(part.left), -i64::from(part.top))
                else {
                    return Ok(());
                };
                let target = target(state, surface_id)?;
                target
                    .surface
                    .copy(bbox, &clip, &view, area, rop)?
                    .map(Change::Damage)
            }
            DrawOp::CopyBits { src_pos } => {
                let target = target(state, surface_id)?;
                target
                    .surface
                    .copy_bits(bbox, &clip, src_pos)?
                    .map(|(dest, exact)| {
                        if exact {
                            Change::CopyBits { src: src_pos, dest }
                        } else {
                            Change::Damage(dest)
                        }
                    })
            }
            DrawOp::Other {
                draw_type: DRAW_NOP,
            } => None,
            DrawOp::Other { draw_type } => {
                return Err(DisplayError::UnsupportedDrawType(draw_type))
            }
        };
        let Some(drawn) = drawn else {
            return Ok(());
        };
        // What the draw really changed, if it was worked out; else all it touched.
        let changes = delta.unwrap_or_else(|| vec![drawn]);
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            let generation = next_generation(state);
            let event = match change {
                Change::Damage(rect) => DisplayEvent::Damage {
                    surface_id,
                    rect,
                    generation,
                },
                Change::CopyBits { src, dest } => DisplayEvent::CopyBits {
                    surface_id,
                    src,
                    dest,
                    generation,
                },
            };
            events.push((event, generation));
        }
        if let Some(entry) = state.surfaces.get_mut(&surface_id) {
            for (event, generation) in &events {
                if let Some(rect) = event_rect(event) {
                    entry.changed(rect, *generation);
                }
            }
        }
        drop(guard);
        self.events.extend(events);
        Ok(())
    }

    /// What `op` would change on the surface as it is now, if that can be worked out without
    /// drawing ([`delta`]); empty if nothing. Under the read lock: readers go on copying, and
    /// the worker, the only writer, changes nothing before it draws.
    fn changes_of(
        &self,
        surface_id: u32,
        bbox: Rect,
        clip: &Clip,
        op: &DrawOp,
    ) -> Option<Vec<Change>> {
        let state = self
            .shared
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let surface = &state.surfaces.get(&surface_id)?.surface;
        match op {
            DrawOp::Copy {
                src: Image::Bitmap(bitmap),
                src_area,
                rop,
                scale_mode: _,
            } => {
                let view = SourceView::from_bitmap(bitmap).ok()?;
                let incoming = Incoming::copy(surface, bbox, clip, &view, *src_area, *rop)?;
                Some(delta::changes(surface, &incoming))
            }
            DrawOp::Fill { color, rop } => {
                let incoming = Incoming::fill(surface, bbox, clip, *color, *rop)?;
                Some(delta::changes(surface, &incoming))
            }
            _ => None,
        }
    }

    fn create(
        &mut self,
        surface_id: u32,
        format: SurfaceFormat,
        width: u32,
        height: u32,
        initial: Option<&[u8]>,
    ) -> Result<(), DisplayError> {
        if surface_id >= MAX_SURFACES {
            return Err(DisplayError::SurfaceIdOutOfRange(surface_id));
        }
        let bytes = surface_bytes(width, height)?;
        {
            // The worker is the only writer: what it reads here still holds below.
            let state = self
                .shared
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let others: usize = state
                .surfaces
                .iter()
                .filter(|(&id, _)| id != surface_id)
                .map(|(_, e)| Surface::footprint_of(e.surface.pixels().len()))
                .sum();
            if others.saturating_add(Surface::footprint_of(bytes)) > MAX_TOTAL_SURFACE_BYTES {
                return Err(DisplayError::SurfaceMemoryExhausted {
                    surface_id,
                    bytes,
                    max: MAX_TOTAL_SURFACE_BYTES,
                });
            }
        }
        // Allocated and filled before the write lock is taken, so readers wait less.
        let surface = Surface::new(width, height, format, initial)?;
        let mut guard = self.write();
        let state = &mut *guard;
        if state.surfaces.remove(&surface_id).is_some() {
            let generation = next_generation(state);
            self.events.push((
                DisplayEvent::SurfaceDestroyed {
                    surface_id,
                    generation,
                },
                generation,
            ));
        }
        let generation = next_generation(state);
        let entry = Entry::new(surface, generation);
        let info = entry.info(surface_id);
        state.surfaces.insert(surface_id, entry);
        drop(guard);
        if surface_id == 0 {
            tracing::info!(width, height, ?format, "Primary surface created");
        } else {
            tracing::debug!(surface_id, width, height, ?format, "Surface created");
        }
        self.events
            .push((DisplayEvent::SurfaceCreated(info), generation));
        Ok(())
    }

    fn destroy(&mut self, surface_id: u32) -> Result<(), DisplayError> {
        let mut guard = self.write();
        let state = &mut *guard;
        state
            .surfaces
            .remove(&surface_id)
            .ok_or(DisplayError::NoSuchSurface(surface_id))?;
        let generation = next_generation(state);
        drop(guard);
        self.events.push((
            DisplayEvent::SurfaceDestroyed {
                surface_id,
                generation,
            },
            generation,
        ));
        Ok(())
    }

    fn cursor(&mut self, cmd: CursorCommand) -> Result<(), DisplayError> {
        let mut guard = self.write();
        let state = &mut *guard;
        // `apply` changes nothing when it refuses, so a refused command spends no generation.
        let generation = state.generation.saturating_add(1);
        let event = state.cursor.apply(cmd, generation)?;
        state.generation = generation;
        drop(guard);
        self.events.push((DisplayEvent::Cursor(event), generation));
        Ok(())
    }

    fn reset_cursor(&mut self) {
        let mut guard = self.write();
        let state = &mut *guard;
        let generation = next_generation(state);
        let event: CursorEvent = state.cursor.reset(generation);
        drop(guard);
        self.events.push((DisplayEvent::Cursor(event), generation));
    }

    fn io(&mut self, request: &IoRequest) -> Result<(), DisplayError> {
        match request {
            IoRequest::CreatePrimary {
                format,
                width,
                height,
                initial,
            } => self.create(
                0,
                SurfaceFormat(*format),
                *width,
                *height,
                initial.as_deref(),
            ),
            // QEMU qxl.c `qxl_spice_destroy_surface_wait`/`ioport_write`: destroying the
            // primary also resets the cursor.
            IoRequest::DestroyPrimary => {
                let result = self.destroy(0);
                self.reset_cursor();
                result
            }
            IoRequest::DestroySurface { surface_id } => self.destroy(*surface_id),
            IoRequest::DestroyAllSurfaces => {
                let ids: Vec<u32> = {
                    let state = self
                        .shared
                        .state
                        .read()
                        .unwrap_or_else(PoisonError::into_inner);
                    state.surfaces.keys().copied().collect()
                };
                ids.into_iter().try_for_each(|id| self.destroy(id))
            }
            // Drawing is applied as it arrives, so the area is already up to date.
            IoRequest::UpdateArea {
                surface_id,
                area: _,
            } => {
                let state = self
                    .shared
                    .state
                    .read()
                    .unwrap_or_else(PoisonError::into_inner);
                state
                    .surfaces
                    .contains_key(surface_id)
                    .then_some(())
                    .ok_or(DisplayError::NoSuchSurface(*surface_id))
            }
            IoRequest::MonitorsConfig { heads } => {
                if heads.len() > MAX_HEADS {
                    return Err(DisplayError::TooManyHeads(heads.len()));
                }
                let heads: Arc<[Head]> = Arc::from(heads.as_slice());
                let mut guard = self.write();
                let state = &mut *guard;
                state.monitors = Arc::clone(&heads);
                let generation = next_generation(state);
                drop(guard);
                self.events.push((
                    DisplayEvent::MonitorsConfig { heads, generation },
                    generation,
                ));
                Ok(())
            }
            IoRequest::Reset => {
                let mut guard = self.write();
                let state = &mut *guard;
                state.surfaces.clear();
                state.monitors = Arc::new([]);
                let generation = next_generation(state);
                state.cursor.reset(generation);
                drop(guard);
                tracing::info!("Display reset");
                self.events
                    .push((DisplayEvent::Reset { generation }, generation));
                Ok(())
            }
        }
    }
}

fn target(state: &mut State, surface_id: u32) -> Result<&mut Entry, DisplayError> {
    state
        .surfaces
        .get_mut(&surface_id)
        .ok_or(DisplayError::NoSuchSurface(surface_id))
}

/// The pixels an event of a draw changed.
fn event_rect(event: &DisplayEvent) -> Option<&Rect> {
    match event {
        DisplayEvent::Damage { rect, .. } | DisplayEvent::CopyBits { dest: rect, .. } => Some(rect),
        _ => None,
    }
}
