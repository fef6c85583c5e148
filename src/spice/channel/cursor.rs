//! The CURSOR channel core: INIT with the current cursor, then the latest shape, position and
//! visibility, diffed against what the client has rather than queued (brief §3.3).

use std::sync::Arc;
use std::time::Instant;

use super::{ChannelCore, ChannelError};
use crate::display::source::CursorShape;
use crate::display::{CursorEvent, DisplayEvent, Point};
use crate::spice::outbox::{AckWindow, Outbox};
use crate::spice::pipe::Canvas;
use crate::spice::wire::{
    BaseClientMsg, ChannelType, Cursor, CursorClientMsg, CursorFlags, CursorHeader, CursorType,
    MsgCursorHide, MsgCursorInit, MsgCursorMove, MsgCursorReset, MsgCursorSet, Point16,
};

/// The cursor as one side knows it.
#[derive(Debug, Clone, Default)]
struct Known {
    shape: Option<Arc<CursorShape>>,
    position: Point,
    visible: bool,
}

/// The CURSOR channel of one client.
pub struct CursorChannel {
    ack: AckWindow,
    canvas: Arc<dyn Canvas>,
    /// The display's cursor as of the events handled.
    current: Known,
    /// What the client has.
    client: Known,
    /// The cursor was reset since the client's INIT: RESET + INIT is due.
    reset: bool,
}

impl std::fmt::Debug for CursorChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorChannel")
            .field("current", &self.current)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

fn point16(p: Point) -> Point16 {
    let clamp = |v: i32| i16::try_from(v).unwrap_or(if v < 0 { i16::MIN } else { i16::MAX });
    Point16 {
        x: clamp(p.x),
        y: clamp(p.y),
    }
}

fn wire_cursor(shape: Option<&Arc<CursorShape>>) -> Cursor {
    match shape {
        None => Cursor::None,
        Some(s) => Cursor::Shape {
            // Never CACHE_ME: the client's cursor cache would need a model of its own, and
            // spice-html5 cannot use FROM_CACHE (brief §3.3).
            flags: CursorFlags::EMPTY,
            header: CursorHeader {
                unique: s.unique,
                cursor_type: CursorType(u8::try_from(s.kind).unwrap_or(u8::MAX)),
                width: s.width,
                height: s.height,
                hot_spot_x: s.hot_x,
                hot_spot_y: s.hot_y,
            },
            data: s.data.clone(),
        },
    }
}

impl CursorChannel {
    /// A linked cursor channel: frames SET_ACK and INIT with the current cursor.
    pub fn new(canvas: Arc<dyn Canvas>, out: &mut Outbox) -> Self {
        let ack = AckWindow::start(out);
        let mut this = Self {
            ack,
            canvas,
            current: Known::default(),
            client: Known::default(),
            reset: false,
        };
        this.reload();
        this.send_init(out);
        this
    }

    fn reload(&mut self) {
        let state = self.canvas.cursor();
        self.current = Known {
            shape: state.shape,
            position: state.position,
            visible: state.visible,
        };
    }

    fn send_init(&mut self, out: &mut Outbox) {
        out.send(&MsgCursorInit {
            position: point16(self.current.position),
            trail_length: 0,
            trail_frequency: 0,
            visible: self.current.visible && self.current.shape.is_some(),
            cursor: wire_cursor(self.current.shape.as_ref()),
        });
        self.client = self.current.clone();
    }
}

impl ChannelCore for CursorChannel {
    fn handle_message(
        &mut self,
        msg_type: u16,
        body: &[u8],
        _now: Instant,
        out: &mut Outbox,
    ) -> Result<(), ChannelError> {
        match CursorClientMsg::decode(msg_type, body).map_err(ChannelError::malformed(msg_type))? {
            CursorClientMsg::Base(BaseClientMsg::AckSync(sync)) => {
                self.ack.handle_ack_sync(sync.generation)
            }
            CursorClientMsg::Base(BaseClientMsg::Ack(_)) => self.ack.handle_ack(out.sent()),
            CursorClientMsg::Base(BaseClientMsg::Disconnecting(d)) => {
                return Err(ChannelError::ClientDisconnecting(d.reason))
            }
            CursorClientMsg::Base(_) => {}
            CursorClientMsg::Unknown(msg_type) => {
                return Err(ChannelError::UnknownMessage {
                    channel: ChannelType::CURSOR,
                    msg_type,
                })
            }
        }
        Ok(())
    }

    fn handle_event(&mut self, event: &DisplayEvent) {
        let DisplayEvent::Cursor(event) = event else {
            if let DisplayEvent::Reset { .. } = event {
                self.current = Known::default();
                self.reset = true;
            }
            return;
        };
        match event {
            CursorEvent::Set {
                position,
                visible,
                shape,
                ..
            } => {
                self.current = Known {
                    shape: Some(Arc::clone(shape)),
                    position: *position,
                    visible: *visible,
                }
            }
            CursorEvent::Move { position, .. } => {
                self.current.position = *position;
                self.current.visible = true;
            }
            CursorEvent::Hide { .. } => self.current.visible = false,
            CursorEvent::Reset { .. } => {
                self.current = Known::default();
                self.reset = true;
            }
        }
    }

    fn handle_lagged(&mut self) {
        self.reload();
        if self.current.shape.is_none() && self.client.shape.is_some() {
            self.reset = true;
        }
    }

    fn poll_transmit(&mut self, out: &mut Outbox) -> bool {
        if !self.ack.is_open(out.sent()) {
            return false;
        }
        if self.reset {
            self.reset = false;
            // The client ignores SET/MOVE after RESET until the next INIT (brief §3.3).
            out.send(&MsgCursorReset::default());
            self.send_init(out);
            return false;
        }
        let (cur, cli) = (&self.current, &self.client);
        let shape_changed = match (&cur.shape, &cli.shape) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, None) => false,
            _ => true,
        };
        if shape_changed && cur.shape.is_some() {
            out.send(&MsgCursorSet {
                position: point16(cur.position),
                visible: cur.visible,
                cursor: wire_cursor(cur.shape.as_ref()),
            });
        } else if cur.visible && (!cli.visible || cur.position != cli.position) {
            // MOVE also shows a hidden cursor (spice-server cursor-channel.cpp).
            out.send(&MsgCursorMove {
                position: point16(cur.position),
            });
        } else if !cur.visible && cli.visible {
            out.send(&MsgCursorHide::default());
        } else {
            return false;
        }
        self.client = self.current.clone();
        false
    }
}
