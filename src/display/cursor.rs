//! The current cursor (shape, position, visibility) and how cursor commands change it.

use std::sync::Arc;

use super::error::DisplayError;
use super::source::{CursorCommand, CursorShape, Point};

/// The longest cursor side accepted. The Linux qxl and virtio_gpu drivers use 64 × 64 cursors
/// and Windows' largest is 256 × 256; twice that leaves margin while capping the copy each
/// client receives.
pub const MAX_CURSOR_SIDE: u16 = 512;

/// The cursor as clients should show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CursorState {
    /// `None` until the guest sets a shape, and again after a reset.
    pub shape: Option<Arc<CursorShape>>,
    pub position: Point,
    pub visible: bool,
    /// The display generation of the last change to the cursor.
    pub generation: u64,
}

/// A cursor change, as published to subscribers.
#[derive(Clone, Debug, PartialEq)]
pub enum CursorEvent {
    Set {
        position: Point,
        visible: bool,
        shape: Arc<CursorShape>,
        generation: u64,
    },
    Move {
        position: Point,
        generation: u64,
    },
    Hide {
        generation: u64,
    },
    /// The cursor is gone (primary destroyed or device reset): clients clear their cursor
    /// cache and wait for the next `Set`, as after SPICE's CURSOR_RESET.
    Reset {
        generation: u64,
    },
}

/// Bytes of an AND (or XOR) mask: one bit per pixel, rows padded to a byte.
fn mask_len(width: usize, height: usize) -> usize {
    width.div_ceil(8) * height
}

/// The data a cursor of this type and size needs (research/spice-protocol.md §3.3; spice-gtk
/// channel-cursor.c `set_cursor`), or `None` for an unknown type.
fn expected_len(kind: u16, width: u16, height: u16) -> Option<usize> {
    let (w, h) = (usize::from(width), usize::from(height));
    let mask = mask_len(w, h);
    Some(match kind {
        CursorShape::ALPHA => w * h * 4,
        CursorShape::MONO => 2 * mask,
        CursorShape::COLOR4 => w.div_ceil(2) * h + 16 * 4 + mask,
        CursorShape::COLOR8 => w * h + 256 * 4 + mask,
        CursorShape::COLOR16 => w * h * 2 + mask,
        CursorShape::COLOR24 => w * h * 3 + mask,
        CursorShape::COLOR32 => w * h * 4 + mask,
        _ => return None,
    })
}

/// Checks a guest cursor and cuts its data to the size its header implies, so every client
/// gets exactly what the header promises.
pub(crate) fn validate_shape(mut shape: CursorShape) -> Result<CursorShape, DisplayError> {
    if shape.width > MAX_CURSOR_SIDE || shape.height > MAX_CURSOR_SIDE {
        return Err(DisplayError::CursorTooLarge {
            width: shape.width,
            height: shape.height,
            max: MAX_CURSOR_SIDE,
        });
    }
    let expected = expected_len(shape.kind, shape.width, shape.height)
        .ok_or(DisplayError::UnknownCursorType(shape.kind))?;
    if shape.data.len() < expected {
        return Err(DisplayError::CursorDataTooShort {
            kind: shape.kind,
            width: shape.width,
            height: shape.height,
            len: shape.data.len(),
            expected,
        });
    }
    shape.data.truncate(expected);
    Ok(shape)
}

impl CursorState {
    /// Applies a cursor command as change `generation`.
    ///
    /// MOVE also shows a hidden cursor, as spice-server does (spice: server/cursor-channel.cpp
    /// `cursor_channel_process_cmd`, `QXL_CURSOR_MOVE` sets `cursor_visible`).
    pub(crate) fn apply(
        &mut self,
        cmd: CursorCommand,
        generation: u64,
    ) -> Result<CursorEvent, DisplayError> {
        let event = match cmd {
            CursorCommand::Set {
                position,
                visible,
                shape,
            } => {
                let shape = Arc::new(validate_shape(shape)?);
                self.shape = Some(Arc::clone(&shape));
                self.position = position;
                self.visible = visible;
                CursorEvent::Set {
                    position,
                    visible,
                    shape,
                    generation,
                }
            }
            CursorCommand::Move { position } => {
                self.position = position;
                self.visible = true;
                CursorEvent::Move {
                    position,
                    generation,
                }
            }
            CursorCommand::Hide => {
                self.visible = false;
                CursorEvent::Hide { generation }
            }
        };
        self.generation = generation;
        Ok(event)
    }

    /// Forgets the cursor (primary destroyed, device reset).
    pub(crate) fn reset(&mut self, generation: u64) -> CursorEvent {
        *self = CursorState {
            generation,
            ..CursorState::default()
        };
        CursorEvent::Reset { generation }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(kind: u16, width: u16, height: u16, len: usize) -> CursorShape {
        CursorShape {
            unique: 7,
            kind,
            width,
            height,
            hot_x: 1,
            hot_y: 2,
            data: vec![0xab; len],
        }
    }

    #[test]
    fn set_move_hide_track_state_and_generation() {
        let mut c = CursorState::default();
        let pos = Point { x: 3, y: 4 };
        let ev = c.apply(
            CursorCommand::Set {
                position: pos,
                visible: false,
                shape: shape(0, 2, 2, 16),
            },
            5,
        );
        assert!(matches!(
            ev,
            Ok(CursorEvent::Set {
                visible: false,
                generation: 5,
                ..
            })
        ));
        assert_eq!((c.position, c.visible, c.generation), (pos, false, 5));
        let pos = Point { x: -1, y: 9 };
        assert_eq!(
            c.apply(CursorCommand::Move { position: pos }, 6),
            Ok(CursorEvent::Move {
                position: pos,
                generation: 6
            })
        );
        assert!(c.visible, "MOVE shows the cursor");
        assert_eq!(
            c.apply(CursorCommand::Hide, 7),
            Ok(CursorEvent::Hide { generation: 7 })
        );
        assert!(!c.visible);
        assert!(c.shape.is_some());
        assert_eq!(c.reset(8), CursorEvent::Reset { generation: 8 });
        assert_eq!(
            c,
            CursorState {
                generation: 8,
                ..CursorState::default()
            }
        );
    }

    #[test]
    fn shapes_are_checked_and_trimmed() {
        let ok = validate_shape(shape(CursorShape::ALPHA, 2, 2, 20)).unwrap();
        assert_eq!(ok.data.len(), 16);
        let mono = validate_shape(shape(CursorShape::MONO, 9, 3, 12)).unwrap();
        assert_eq!(mono.data.len(), 12);
        assert_eq!(
            validate_shape(shape(CursorShape::ALPHA, 2, 2, 15)),
            Err(DisplayError::CursorDataTooShort {
                kind: 0,
                width: 2,
                height: 2,
                len: 15,
                expected: 16
            })
        );
        assert_eq!(
            validate_shape(shape(99, 1, 1, 100)),
            Err(DisplayError::UnknownCursorType(99))
        );
        assert!(matches!(
            validate_shape(shape(CursorShape::ALPHA, u16::MAX, 1, 0)),
            Err(DisplayError::CursorTooLarge { .. })
        ));
        let mut c = CursorState::default();
        let bad = CursorCommand::Set {
            position: Point::default(),
            visible: true,
            shape: shape(0, 4, 4, 0),
        };
        assert!(c.apply(bad, 1).is_err());
        assert_eq!(c, CursorState::default(), "a refused SET changes nothing");
    }
}
