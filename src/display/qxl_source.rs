//! Feeds the display worker from a QXL device: takes the consumer's I/O requests and ring
//! commands and hands them over as [`Work`], moving qxl's owned values field by field.
//!
//! The `qxl` consumer has already validated and copied out everything it hands us; the worker
//! checks ids, sizes and rectangles again before touching a pixel. What the worker does not
//! render (cursor trails, `QXL_CMD_UPDATE`, `QXL_CMD_MESSAGE`, NOPs) is dropped here.

use std::io;
use std::time::{Duration, Instant};

use super::error::DisplayError;
use super::handle::{spawn, try_spawn, DisplayHandle};
use super::source::{
    Bitmap, Clip, CommandSource, CursorCommand, CursorShape, DrawCommand, DrawOp, Head, Image,
    IoRequest, IoWork, Point, Rect, SurfaceCommand, Work,
};
use super::warn_limit::WarnLimit;

/// A [`CommandSource`] over a QXL device's consumer end.
///
/// Order: a pending I/O request first, once both rings hold nothing pushed before it (the
/// consumer hands one out only when the command ring is drained; the cursor ring is drained
/// here), then the command and cursor rings, taking turns so that a busy command ring never
/// starves the cursor.
#[derive(Debug)]
pub struct QxlSource {
    consumer: qxl::Consumer,
    /// The ring tried first on the next poll: flipped after every item taken from a ring.
    cursor_first: bool,
    /// An I/O request taken from the device, handed out once the cursor ring is drained.
    /// Dropping it answers the producer (`IoError::Dropped`), so it is never lost.
    held_io: Option<qxl::IoCall>,
    /// Cursor commands handed out while `held_io` waits.
    cursor_drained: u32,
    warnings: WarnLimit,
}

/// What one poll of the device found.
enum Step {
    Work(Work),
    /// An item was consumed but gives the worker nothing to do (dropped or malformed).
    Skipped,
    /// Nothing pending anywhere.
    Empty,
}

impl QxlSource {
    pub fn new(consumer: qxl::Consumer) -> Self {
        Self {
            consumer,
            cursor_first: false,
            held_io: None,
            cursor_drained: 0,
            warnings: WarnLimit::new("QXL parse warnings"),
        }
    }

    /// The consumer back, e.g. to hand the device to another worker.
    pub fn into_consumer(self) -> qxl::Consumer {
        self.consumer
    }

    fn step(&mut self) -> Step {
        if self.held_io.is_none() {
            match self.consumer.take_io() {
                Some(call) if matches!(call.request, qxl::IoRequest::FlushRelease) => {
                    // The consumer answers FlushRelease itself today; should it hand one out,
                    // the answer is the same.
                    self.consumer.flush_release();
                    call.complete(Ok(()));
                    return Step::Skipped;
                }
                held => self.held_io = held,
            }
        }
        if self.held_io.is_some() {
            // The command ring is drained (the consumer hands out I/O only then); the cursor
            // commands pushed before the request go first too, as spice-server's worker runs
            // `flush_all_qxl_commands` before destroying surfaces. The producer is blocked on
            // the request meanwhile, so one ring's worth is all there can be; a ring refilled
            // behind our back waits for the request.
            if self.cursor_drained < qxl::abi::COMMAND_RING_SIZE {
                if let Some(step) = self.pop(true) {
                    self.cursor_drained += 1;
                    return step;
                }
            }
            self.cursor_drained = 0;
            if let Some(call) = self.held_io.take() {
                return Step::Work(Work::Io(io_work(call)));
            }
        }
        let order = if self.cursor_first {
            [true, false]
        } else {
            [false, true]
        };
        order
            .into_iter()
            .find_map(|cursor| self.pop(cursor))
            .unwrap_or(Step::Empty)
    }

    /// One item from the cursor or the command ring, `None` when that ring is empty.
    fn pop(&mut self, cursor: bool) -> Option<Step> {
        let result = if cursor {
            self.consumer
                .pop_cursor()?
                .map(|c| cursor_command(c).map(Work::Cursor))
        } else {
            self.consumer.pop_command()?.map(command_work)
        };
        self.cursor_first = !cursor;
        Some(match result {
            Ok(Some(work)) => Step::Work(work),
            Ok(None) => Step::Skipped,
            Err(e) => {
                let ring = if cursor { "cursor" } else { "command" };
                self.warnings
                    .warn(format_args!("Dropped a QXL {ring} ring command: {e}"));
                Step::Skipped
            }
        })
    }
}

impl CommandSource for QxlSource {
    fn next(&mut self, timeout: Duration) -> Option<Work> {
        // `None`: the timeout reaches past what `Instant` can represent; wait without end.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match self.step() {
                Step::Work(work) => return Some(work),
                Step::Skipped => {}
                Step::Empty => {
                    // The rings ran dry: hand the producer its memory back before sleeping.
                    // (`wait` does too, but only when it actually sleeps.)
                    self.consumer.flush_release();
                    let left =
                        deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
                    if left.is_zero() || !self.consumer.wait(left) {
                        return None;
                    }
                }
            }
            // A flood of dropped or malformed commands still returns within `timeout`, so the
            // worker gets to check for shutdown.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
        }
    }
}

/// Starts a display worker fed by `consumer`.
///
/// # Panics
/// If the OS cannot start a thread (as [`spawn`]).
pub fn spawn_qxl(consumer: qxl::Consumer) -> DisplayHandle {
    spawn(QxlSource::new(consumer))
}

/// Starts a display worker fed by `consumer`, or says why the OS would not start its thread.
pub fn try_spawn_qxl(consumer: qxl::Consumer) -> io::Result<DisplayHandle> {
    try_spawn(QxlSource::new(consumer))
}

/// The worker's form of `call`; its completion answers the producer.
fn io_work(mut call: qxl::IoCall) -> IoWork {
    let request = match &mut call.request {
        qxl::IoRequest::CreatePrimary(create) => IoRequest::CreatePrimary {
            format: create.format,
            width: create.width,
            height: create.height,
            // Moved, not copied: a primary's initial pixels can be a whole frame. The call
            // keeps only what answering it needs.
            initial: create.initial.take(),
        },
        qxl::IoRequest::DestroyPrimary => IoRequest::DestroyPrimary,
        qxl::IoRequest::UpdateArea { surface_id, area } => IoRequest::UpdateArea {
            surface_id: *surface_id,
            area: rect(*area),
        },
        qxl::IoRequest::Reset => IoRequest::Reset,
        qxl::IoRequest::MonitorsConfig(heads) => IoRequest::MonitorsConfig {
            heads: heads.iter().map(|h| head(*h)).collect(),
        },
        // Answered in `step` before it gets here; confirming surface 0 would do no harm.
        qxl::IoRequest::FlushRelease => IoRequest::UpdateArea {
            surface_id: 0,
            area: Rect::default(),
        },
    };
    IoWork::new(request, move |result: Result<(), DisplayError>| {
        call.complete(result.map_err(|e| qxl::IoError::Rejected(e.to_string())));
    })
}

/// The command's work, `None` for what the worker does not act on.
fn command_work(cmd: qxl::Command) -> Option<Work> {
    match cmd {
        qxl::Command::Draw(drawable) => Some(Work::Draw(draw_command(drawable))),
        qxl::Command::Surface(qxl::SurfaceCmd { surface_id, kind }) => {
            Some(Work::Surface(match kind {
                qxl::SurfaceCmdKind::Create(qxl::SurfaceCreate {
                    format,
                    width,
                    height,
                    initial,
                }) => SurfaceCommand::Create {
                    surface_id,
                    format,
                    width,
                    height,
                    initial,
                },
                qxl::SurfaceCmdKind::Destroy => SurfaceCommand::Destroy { surface_id },
            }))
        }
        // UPDATE asks spice-server to render an area before it is read; the worker renders
        // every command as it arrives, so there is nothing left to do. MESSAGE is debug text.
        qxl::Command::Update { .. } | qxl::Command::Message | qxl::Command::Nop => None,
    }
}

fn draw_command(drawable: qxl::Drawable) -> DrawCommand {
    // The effect is spice-server's hint for ordering its drawable tree and mm_time its
    // stream timing; the worker renders in ring order and streams nothing.
    let qxl::Drawable {
        surface_id,
        bbox,
        clip,
        effect: _,
        op,
        mm_time: _,
    } = drawable;
    DrawCommand {
        surface_id,
        bbox: rect(bbox),
        clip: match clip {
            qxl::Clip::None => Clip::None,
            qxl::Clip::Rects(rects) => Clip::Rects(rects.into_iter().map(rect).collect()),
        },
        op: match op {
            qxl::DrawOp::Fill { color, rop } => DrawOp::Fill { color, rop },
            qxl::DrawOp::Copy {
                src,
                src_area,
                rop,
                scale_mode,
            } => DrawOp::Copy {
                src: image(src),
                src_area: rect(src_area),
                rop,
                scale_mode,
            },
            qxl::DrawOp::CopyBits { src_pos } => DrawOp::CopyBits {
                src_pos: point(src_pos),
            },
            qxl::DrawOp::Other { draw_type } => DrawOp::Other { draw_type },
        },
    }
}

fn image(image: qxl::Image) -> Image {
    match image {
        // The descriptor id is a cache key for clients; the worker caches nothing.
        qxl::Image::Bitmap(qxl::Bitmap {
            id: _,
            format,
            width,
            height,
            stride,
            data,
            palette,
        }) => Image::Bitmap(Bitmap {
            format,
            width,
            height,
            stride,
            // The qxl parser turns bottom-up bitmaps over while copying them out.
            top_down: true,
            data,
            palette,
        }),
        qxl::Image::Surface { surface_id } => Image::SurfaceImage { surface_id },
    }
}

/// The cursor command, `None` for TRAIL (no SPICE client draws trails).
fn cursor_command(cmd: qxl::CursorCmd) -> Option<CursorCommand> {
    match cmd {
        qxl::CursorCmd::Set {
            position,
            visible,
            shape,
        } => {
            let qxl::CursorShape {
                unique,
                kind,
                width,
                height,
                hot_x,
                hot_y,
                data,
            } = shape;
            Some(CursorCommand::Set {
                position: point(position),
                visible,
                shape: CursorShape {
                    unique,
                    kind,
                    width,
                    height,
                    hot_x,
                    hot_y,
                    data,
                },
            })
        }
        qxl::CursorCmd::Move { position } => Some(CursorCommand::Move {
            position: point(position),
        }),
        qxl::CursorCmd::Hide => Some(CursorCommand::Hide),
        qxl::CursorCmd::Trail { .. } => None,
    }
}

fn rect(r: qxl::Rect) -> Rect {
    Rect {
        top: r.top,
        left: r.left,
        bottom: r.bottom,
        right: r.right,
    }
}

fn point(p: qxl::Point) -> Point {
    Point { x: p.x, y: p.y }
}

fn head(h: qxl::Head) -> Head {
    let qxl::Head {
        id,
        surface_id,
        width,
        height,
        x,
        y,
    } = h;
    Head {
        id,
        surface_id,
        width,
        height,
        x,
        y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_arrive_top_down_and_surface_images_keep_their_id() {
        let bitmap = qxl::Bitmap {
            id: 7,
            format: 8,
            width: 1,
            height: 2,
            stride: 4,
            data: vec![1, 2, 3, 4, 5, 6, 7, 8],
            palette: None,
        };
        let Image::Bitmap(b) = image(qxl::Image::Bitmap(bitmap)) else {
            panic!("not a bitmap");
        };
        assert!(b.top_down);
        assert_eq!((b.width, b.height, b.stride, b.data.len()), (1, 2, 4, 8));
        assert_eq!(
            image(qxl::Image::Surface { surface_id: 3 }),
            Image::SurfaceImage { surface_id: 3 }
        );
    }

    #[test]
    fn dropped_commands_give_no_work() {
        assert!(command_work(qxl::Command::Nop).is_none());
        assert!(command_work(qxl::Command::Message).is_none());
        let update = qxl::Command::Update {
            surface_id: 0,
            area: qxl::Rect::default(),
        };
        assert!(command_work(update).is_none());
        let trail = qxl::CursorCmd::Trail {
            length: 1,
            frequency: 1,
        };
        assert!(cursor_command(trail).is_none());
    }
}
