//! The worker on its thread, driven by a fake command source: ordering, generations,
//! snapshots, waiting and shutdown.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::source::{
    Bitmap, BitmapFormat, CursorCommand, CursorShape, DrawCommand, DrawOp, Image, IoRequest,
    IoWork, Rop, SurfaceCommand, Work,
};
use super::*;

/// Generous: only reached when a test is failing.
const WAIT: Duration = Duration::from_secs(5);

/// A command source fed through a channel, as the QXL rings feed the real one.
struct FakeSource(mpsc::Receiver<Work>);

impl CommandSource for FakeSource {
    fn next(&mut self, timeout: Duration) -> Option<Work> {
        self.0.recv_timeout(timeout).ok()
    }
}

pub(super) fn start() -> (mpsc::Sender<Work>, DisplayHandle) {
    let (tx, rx) = mpsc::channel();
    (tx, spawn(FakeSource(rx)))
}

/// Sends an I/O request and waits for its completion, as the producer does.
pub(super) fn io(tx: &mpsc::Sender<Work>, request: IoRequest) -> Result<(), DisplayError> {
    let (done_tx, done_rx) = mpsc::channel();
    let work = IoWork::new(request, move |r| {
        let _ = done_tx.send(r);
    });
    // If the worker is gone the work comes back in the error and is dropped: its completion
    // then reports the shutdown.
    let _ = tx.send(Work::Io(work));
    done_rx.recv_timeout(WAIT).unwrap()
}

pub(super) fn create_primary(width: u32, height: u32) -> IoRequest {
    IoRequest::CreatePrimary {
        format: SurfaceFormat::XRGB32.0,
        width,
        height,
        initial: None,
    }
}

fn fill(surface_id: u32, bbox: Rect, color: u32) -> Work {
    Work::Draw(DrawCommand {
        surface_id,
        bbox,
        clip: Clip::None,
        op: DrawOp::Fill {
            color,
            rop: Rop::OP_PUT,
        },
    })
}

pub(super) fn drain(rx: &mut tokio::sync::broadcast::Receiver<DisplayEvent>) -> Vec<DisplayEvent> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => out.push(e),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

fn generation_of(e: &DisplayEvent) -> u64 {
    match e {
        DisplayEvent::SurfaceCreated(info) => info.generation,
        DisplayEvent::SurfaceDestroyed { generation, .. }
        | DisplayEvent::Damage { generation, .. }
        | DisplayEvent::CopyBits { generation, .. }
        | DisplayEvent::MonitorsConfig { generation, .. }
        | DisplayEvent::Reset { generation } => *generation,
        DisplayEvent::Cursor(
            CursorEvent::Set { generation, .. }
            | CursorEvent::Move { generation, .. }
            | CursorEvent::Hide { generation }
            | CursorEvent::Reset { generation },
        ) => *generation,
    }
}

fn arrow() -> CursorShape {
    CursorShape {
        unique: 1,
        kind: CursorShape::ALPHA,
        width: 2,
        height: 2,
        hot_x: 0,
        hot_y: 0,
        data: vec![0xff; 16],
    }
}

#[test]
fn a_session_arrives_in_order_with_increasing_generations() {
    let (tx, display) = start();
    let mut events = display.subscribe();
    let mut cursor_events = display.subscribe_cursor();
    io(&tx, create_primary(4, 2)).unwrap();
    tx.send(fill(0, Rect::ltrb(0, 0, 2, 2), 0x00ff_0000))
        .unwrap();
    tx.send(Work::Draw(DrawCommand {
        surface_id: 0,
        bbox: Rect::ltrb(2, 0, 4, 2),
        clip: Clip::None,
        op: DrawOp::CopyBits {
            src_pos: Point { x: 0, y: 0 },
        },
    }))
    .unwrap();
    let pos = Point { x: 1, y: 1 };
    tx.send(Work::Cursor(CursorCommand::Set {
        position: pos,
        visible: true,
        shape: arrow(),
    }))
    .unwrap();
    tx.send(Work::Cursor(CursorCommand::Move {
        position: Point { x: 3, y: 0 },
    }))
    .unwrap();
    tx.send(Work::Cursor(CursorCommand::Hide)).unwrap();
    assert!(display.wait_generation(6, WAIT));

    let snap = display.snapshot(0).unwrap();
    assert_eq!((snap.info.width, snap.info.height, snap.stride), (4, 2, 16));
    assert_eq!(snap.info.generation, 3);
    let red = 0x00ff_0000u32.to_le_bytes();
    assert!(
        snap.pixels.chunks(4).all(|p| p == red),
        "fill then copy-bits covered all"
    );
    let cursor = display.cursor();
    assert_eq!(
        (cursor.position, cursor.visible, cursor.generation),
        (Point { x: 3, y: 0 }, false, 6)
    );
    assert_eq!(cursor.shape.as_deref(), Some(&arrow()));

    io(&tx, IoRequest::DestroyPrimary).unwrap();
    assert_eq!(display.snapshot(0).map(|s| s.info), None);
    assert!(display.surfaces().is_empty());
    let got = drain(&mut events);
    let gens: Vec<u64> = got.iter().map(generation_of).collect();
    assert_eq!(gens, (1..=8).collect::<Vec<_>>());
    assert!(matches!(
        got[0],
        DisplayEvent::SurfaceCreated(SurfaceInfo {
            surface_id: 0,
            width: 4,
            ..
        })
    ));
    assert_eq!(
        got[1],
        DisplayEvent::Damage {
            surface_id: 0,
            rect: Rect::ltrb(0, 0, 2, 2),
            generation: 2
        }
    );
    assert_eq!(
        got[2],
        DisplayEvent::CopyBits {
            surface_id: 0,
            src: Point::default(),
            dest: Rect::ltrb(2, 0, 4, 2),
            generation: 3
        }
    );
    assert!(matches!(
        got[3],
        DisplayEvent::Cursor(CursorEvent::Set { visible: true, .. })
    ));
    assert!(matches!(
        got[4],
        DisplayEvent::Cursor(CursorEvent::Move { .. })
    ));
    assert!(matches!(
        got[5],
        DisplayEvent::Cursor(CursorEvent::Hide { .. })
    ));
    assert_eq!(
        got[6],
        DisplayEvent::SurfaceDestroyed {
            surface_id: 0,
            generation: 7
        }
    );
    assert_eq!(
        got[7],
        DisplayEvent::Cursor(CursorEvent::Reset { generation: 8 })
    );
    let cursor_only: Vec<DisplayEvent> = got
        .into_iter()
        .filter(|e| matches!(e, DisplayEvent::Cursor(_)))
        .collect();
    assert_eq!(
        drain(&mut cursor_events),
        cursor_only,
        "cursor events, nothing else"
    );
    display.shutdown();
}

#[test]
fn copies_from_bitmaps_and_surfaces_land_in_snapshots() {
    let (tx, display) = start();
    io(&tx, create_primary(4, 4)).unwrap();
    tx.send(Work::Surface(SurfaceCommand::Create {
        surface_id: 3,
        format: SurfaceFormat::ARGB32.0,
        width: 2,
        height: 2,
        initial: Some(vec![7; 16]),
    }))
    .unwrap();
    let data: Vec<u8> = (0u8..16).collect();
    let bitmap = Bitmap {
        format: BitmapFormat::RGBA.0,
        width: 2,
        height: 2,
        stride: 8,
        top_down: true,
        data: data.clone(),
        palette: None,
    };
    let copy = |src, bbox, src_area| {
        Work::Draw(DrawCommand {
            surface_id: 0,
            bbox,
            clip: Clip::None,
            op: DrawOp::Copy {
                src,
                src_area,
                rop: Rop::OP_PUT,
                scale_mode: 1,
            },
        })
    };
    tx.send(copy(
        Image::Bitmap(bitmap),
        Rect::ltrb(0, 0, 2, 2),
        Rect::ltrb(0, 0, 2, 2),
    ))
    .unwrap();
    tx.send(copy(
        Image::SurfaceImage { surface_id: 3 },
        Rect::ltrb(2, 2, 4, 4),
        Rect::ltrb(0, 0, 2, 2),
    ))
    .unwrap();
    // From the primary onto itself, overlapping: rows 0-1 down to rows 1-2.
    tx.send(copy(
        Image::SurfaceImage { surface_id: 0 },
        Rect::ltrb(0, 1, 2, 3),
        Rect::ltrb(0, 0, 2, 2),
    ))
    .unwrap();
    assert!(display.wait_generation(5, WAIT));

    let (generation, top_left) = display.snapshot_rect(0, Rect::ltrb(0, 0, 2, 1)).unwrap();
    assert_eq!(generation, 5);
    assert_eq!(top_left, data[..8]);
    let (_, moved) = display.snapshot_rect(0, Rect::ltrb(0, 1, 2, 3)).unwrap();
    // Read back from an xRGB surface, the X byte comes out opaque.
    let opaque: Vec<u8> = data
        .iter()
        .enumerate()
        .map(|(i, &b)| if i % 4 == 3 { 0xff } else { b })
        .collect();
    assert_eq!(moved, opaque);
    let (_, bottom_right) = display.snapshot_rect(0, Rect::ltrb(2, 3, 4, 4)).unwrap();
    assert_eq!(bottom_right, vec![7; 8]);
    assert_eq!(display.snapshot_rect(0, Rect::ltrb(3, 3, 5, 4)), None);
    assert_eq!(display.snapshot_rect(9, Rect::ltrb(0, 0, 1, 1)), None);
    let ids: Vec<u32> = display.surfaces().iter().map(|s| s.surface_id).collect();
    assert_eq!(ids, vec![0, 3]);
}

#[test]
fn bad_commands_change_nothing_and_the_worker_goes_on() {
    let (tx, display) = start();
    let mut events = display.subscribe();
    let huge = IoRequest::CreatePrimary {
        format: 32,
        width: u32::MAX,
        height: u32::MAX,
        initial: None,
    };
    assert!(matches!(
        io(&tx, huge),
        Err(DisplayError::SurfaceSizeOutOfRange { .. })
    ));
    let bad_format = IoRequest::CreatePrimary {
        format: 80,
        width: 4,
        height: 4,
        initial: None,
    };
    assert_eq!(
        io(&tx, bad_format),
        Err(DisplayError::UnsupportedSurfaceFormat(
            SurfaceFormat::R5G6B5
        ))
    );
    assert_eq!(
        io(&tx, IoRequest::DestroySurface { surface_id: 5 }),
        Err(DisplayError::NoSuchSurface(5))
    );
    let update = IoRequest::UpdateArea {
        surface_id: 0,
        area: Rect::default(),
    };
    assert_eq!(io(&tx, update), Err(DisplayError::NoSuchSurface(0)));
    tx.send(fill(0, Rect::ltrb(0, 0, 1, 1), 1)).unwrap();
    tx.send(Work::Surface(SurfaceCommand::Create {
        surface_id: MAX_SURFACES,
        format: 32,
        width: 1,
        height: 1,
        initial: None,
    }))
    .unwrap();
    tx.send(Work::Surface(SurfaceCommand::Destroy {
        surface_id: u32::MAX,
    }))
    .unwrap();
    let mut bad_cursor = arrow();
    bad_cursor.data.clear();
    tx.send(Work::Cursor(CursorCommand::Set {
        position: Point::default(),
        visible: true,
        shape: bad_cursor,
    }))
    .unwrap();
    // Drawing to a surface and reading from a missing one, an unknown draw type, a NOP.
    io(&tx, create_primary(2, 2)).unwrap();
    tx.send(Work::Draw(DrawCommand {
        surface_id: 0,
        bbox: Rect::ltrb(0, 0, 2, 2),
        clip: Clip::None,
        op: DrawOp::Copy {
            src: Image::SurfaceImage { surface_id: 77 },
            src_area: Rect::ltrb(0, 0, 2, 2),
            rop: 8,
            scale_mode: 0,
        },
    }))
    .unwrap();
    for draw_type in [0, 10] {
        tx.send(Work::Draw(DrawCommand {
            surface_id: 0,
            bbox: Rect::ltrb(0, 0, 2, 2),
            clip: Clip::None,
            op: DrawOp::Other { draw_type },
        }))
        .unwrap();
    }
    assert_eq!(
        io(
            &tx,
            IoRequest::UpdateArea {
                surface_id: 0,
                area: Rect::default()
            }
        ),
        Ok(())
    );
    let got = drain(&mut events);
    assert_eq!(got.len(), 1, "only the good primary: {got:?}");
    assert_eq!(display.generation(), 1);
    assert_eq!(display.cursor(), CursorState::default());
}

#[test]
fn replacing_and_resetting_announce_themselves() {
    let (tx, display) = start();
    let mut events = display.subscribe();
    io(&tx, create_primary(2, 2)).unwrap();
    io(&tx, create_primary(3, 3)).unwrap();
    tx.send(Work::Surface(SurfaceCommand::Create {
        surface_id: 1,
        format: 96,
        width: 1,
        height: 1,
        initial: None,
    }))
    .unwrap();
    io(&tx, IoRequest::Reset).unwrap();
    let got = drain(&mut events);
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(
        got[1],
        DisplayEvent::SurfaceDestroyed {
            surface_id: 0,
            generation: 2
        }
    );
    assert!(matches!(
        got[2],
        DisplayEvent::SurfaceCreated(SurfaceInfo {
            width: 3,
            generation: 3,
            ..
        })
    ));
    assert_eq!(got[4], DisplayEvent::Reset { generation: 5 });
    assert!(display.surfaces().is_empty());
}

#[test]
fn a_lagging_subscriber_is_told_to_resync() {
    let (tx, display) = start();
    let mut events = display.subscribe();
    io(&tx, create_primary(2, 2)).unwrap();
    let total = u64::try_from(EVENT_CAPACITY).unwrap() + 10;
    // From 1: a fill that leaves the pixel as it is (black) changes nothing and sends nothing.
    for i in 1..=total {
        tx.send(fill(0, Rect::ltrb(0, 0, 1, 1), u32::try_from(i).unwrap()))
            .unwrap();
    }
    assert!(display.wait_generation(total + 1, WAIT));
    assert!(matches!(events.blocking_recv(), Err(RecvError::Lagged(_))));
}

#[test]
fn waits_end_on_change_or_timeout() {
    let (tx, display) = start();
    assert!(!display.wait_generation(1, Duration::from_millis(20)));
    assert!(!display.wait_until(Duration::from_millis(20), |d| d.snapshot(0).is_some()));
    let waiter = display.clone();
    let t = std::thread::spawn(move || waiter.wait_until(WAIT, |d| d.surfaces().len() == 2));
    io(&tx, create_primary(1, 1)).unwrap();
    tx.send(Work::Surface(SurfaceCommand::Create {
        surface_id: 2,
        format: 32,
        width: 1,
        height: 1,
        initial: None,
    }))
    .unwrap();
    assert!(t.join().unwrap());
    assert!(display.wait_generation(2, Duration::ZERO));
    assert!(display.wait_until(Duration::MAX, |d| d.generation() == 2));
}

#[test]
fn shutdown_joins_and_fails_pending_io() {
    let (tx, display) = start();
    display.shutdown();
    display.shutdown();
    // The worker is gone: work still queued is dropped, and its completion says why.
    assert_eq!(
        io(&tx, create_primary(1, 1)),
        Err(DisplayError::ShuttingDown)
    );
    assert_eq!(display.generation(), 0);
}

#[test]
fn dropping_the_last_handle_stops_the_worker() {
    let (tx, display) = start();
    let clone = display.clone();
    drop(display);
    io(&tx, create_primary(1, 1)).unwrap();
    drop(clone);
    assert!(
        tx.send(fill(0, Rect::default(), 0)).is_err(),
        "the source was dropped with the worker"
    );
}

#[test]
fn monitor_layouts_are_kept_and_announced() {
    let (tx, display) = start();
    let mut events = display.subscribe();
    let head = Head {
        id: 0,
        surface_id: 0,
        width: 1024,
        height: 768,
        x: 0,
        y: 0,
    };
    let heads = vec![
        head,
        Head {
            id: 1,
            x: 1024,
            ..head
        },
    ];
    io(
        &tx,
        IoRequest::MonitorsConfig {
            heads: heads.clone(),
        },
    )
    .unwrap();
    assert_eq!(&*display.monitors(), heads.as_slice());
    let too_many = vec![head; MAX_HEADS + 1];
    assert_eq!(
        io(&tx, IoRequest::MonitorsConfig { heads: too_many }),
        Err(DisplayError::TooManyHeads(MAX_HEADS + 1))
    );
    assert_eq!(display.monitors().len(), 2);
    io(&tx, IoRequest::Reset).unwrap();
    assert!(display.monitors().is_empty());
    let got = drain(&mut events);
    assert_eq!(
        got[0],
        DisplayEvent::MonitorsConfig {
            heads: Arc::from(heads),
            generation: 1
        }
    );
    assert_eq!(got[1], DisplayEvent::Reset { generation: 2 });
}
