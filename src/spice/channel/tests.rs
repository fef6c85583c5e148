//! The channel cores in memory: greetings, replies, latest-value cursor, input decoding and
//! motion acks, timeouts. No sockets; time is passed in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::display::source::CursorShape;
use crate::display::{self, CursorEvent, CursorState, Point, Rect, SurfaceInfo};
use crate::guest::{
    DisplayControl, HeadRequest, InputClient, InputClientId, InputEvent, InputSink,
};
use crate::spice::pipe::{Canvas, PipeConfig};
use crate::spice::session::Sessions;
use crate::spice::wire::{
    ButtonsState, Codec, CursorMsg, DisplayMsgc, Framer, HeaderKind, InputsMsg, InputsMsgc,
    MainMsg, MainMsgc, Message, MessageWriter, MouseButton, MouseMode, MsgCursorInit, MsgCursorSet,
    MsgMainChannelsList, MsgMainInit, MsgMainMouseMode, MsgcInputsMouseMotion,
    MsgcInputsMousePosition, MsgcInputsMousePress, MsgcInputsMouseRelease, MsgcMainAttachChannels,
    MsgcMainMouseModeRequest,
};
use crate::spice::InputPolicy;

struct FakeCanvas {
    cursor: Mutex<CursorState>,
}

impl Canvas for FakeCanvas {
    fn surfaces(&self) -> Vec<SurfaceInfo> {
        vec![SurfaceInfo {
            surface_id: 0,
            width: 100,
            height: 50,
            format: display::SurfaceFormat::XRGB32,
            generation: 1,
        }]
    }
    fn rect_version(&self, _: u32, _: Rect) -> Option<display::RectVersion> {
        Some(display::RectVersion {
            generation: 1,
            content: 1,
        })
    }
    fn read_rect_bgr(
        &self,
        _: u32,
        rect: Rect,
        stride: usize,
        out: &mut Vec<u8>,
    ) -> Option<display::RectVersion> {
        out.resize(out.len() + stride * rect.height() as usize, 0);
        self.rect_version(0, rect)
    }
    fn monitors(&self) -> Arc<[display::Head]> {
        Arc::new([])
    }
    fn cursor(&self) -> CursorState {
        self.cursor.lock().unwrap().clone()
    }
}

fn canvas() -> Arc<FakeCanvas> {
    Arc::new(FakeCanvas {
        cursor: Mutex::new(CursorState::default()),
    })
}

fn outbox() -> Outbox {
    Outbox::new(MessageWriter::new(HeaderKind::Mini))
}

/// Takes everything framed so far as (type, body).
fn sent(out: &mut Outbox) -> Vec<(u16, Vec<u8>)> {
    let bytes = out.unsent_bytes();
    out.advance(bytes.len());
    let mut framer = Framer::new(HeaderKind::Mini, u32::MAX);
    let mut at = 0;
    let mut msgs = Vec::new();
    while let Some((f, used)) = framer.next_frame(&bytes[at..]).unwrap() {
        msgs.push((f.msg_type, f.body.to_vec()));
        at += used;
    }
    msgs
}

fn body<'a, M: Message<'a>>(msg: &M) -> Vec<u8> {
    msg.to_bytes()
}

#[derive(Default)]
struct Layouts(Mutex<Vec<Vec<HeadRequest>>>);

impl DisplayControl for Layouts {
    fn request_layout(&self, heads: &[HeadRequest]) {
        self.0.lock().unwrap().push(heads.to_vec());
    }
}

#[test]
fn main_greets_lists_channels_and_honours_mouse_mode() {
    let sessions = Sessions::new(4, InputPolicy::All);
    let session = sessions.create().unwrap();
    let mut out = outbox();
    let mut main = MainChannel::new(
        Arc::clone(&session),
        Arc::new(Layouts::default()),
        Instant::now(),
        &mut out,
    );
    let msgs = sent(&mut out);
    assert_eq!(msgs[0].0, MainMsg::INIT.0);
    let init = MsgMainInit::read_bytes(&msgs[0].1).unwrap();
    assert_eq!(init.session_id, session.id());
    assert_eq!(init.agent_connected, 1);
    assert_eq!(init.supported_mouse_modes, 3);
    assert_eq!(init.current_mouse_mode, 2);

    let now = Instant::now();
    main.handle_message(
        MainMsgc::ATTACH_CHANNELS.0,
        &body(&MsgcMainAttachChannels::default()),
        now,
        &mut out,
    )
    .unwrap();
    let msgs = sent(&mut out);
    let list = MsgMainChannelsList::read_bytes(&msgs[0].1).unwrap();
    assert_eq!(list.channels, crate::spice::session::SESSION_CHANNELS);

    let req = MsgcMainMouseModeRequest {
        mode: MouseMode::SERVER,
    };
    main.handle_message(MainMsgc::MOUSE_MODE_REQUEST.0, &body(&req), now, &mut out)
        .unwrap();
    assert_eq!(session.mouse_mode(), MouseMode::SERVER);
    let msgs = sent(&mut out);
    let mode = MsgMainMouseMode::read_bytes(&msgs[0].1).unwrap();
    assert_eq!(mode.current_mode, MouseMode::SERVER);

    let err = main.handle_message(999, &[], now, &mut out).unwrap_err();
    assert!(matches!(
        err,
        ChannelError::UnknownMessage { msg_type: 999, .. }
    ));
}

#[test]
fn main_returns_agent_tokens_in_batches() {
    let sessions = Sessions::new(4, InputPolicy::All);
    let mut out = outbox();
    let mut main = MainChannel::new(
        sessions.create().unwrap(),
        Arc::new(Layouts::default()),
        Instant::now(),
        &mut out,
    );
    sent(&mut out);
    let now = Instant::now();
    main.handle_message(
        MainMsgc::AGENT_START.0,
        &u32::MAX.to_le_bytes(),
        now,
        &mut out,
    )
    .unwrap();
    // Clipboard chunks: skipped, but each costs a token.
    let mut clip = vec![
        1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0,
    ];
    clip.resize(2048, 0);
    for _ in 0..4 {
        main.handle_message(MainMsgc::AGENT_DATA.0, &clip[..20], now, &mut out)
            .unwrap();
        assert!(sent(&mut out).is_empty());
        clip.truncate(0);
        clip.resize(20, 0);
    }
    main.handle_message(MainMsgc::AGENT_DATA.0, &clip, now, &mut out)
        .unwrap();
    let msgs = sent(&mut out);
    assert_eq!(
        msgs,
        [(MainMsg::AGENT_TOKEN.0, 5u32.to_le_bytes().to_vec())]
    );
}

fn shape(w: u16) -> Arc<CursorShape> {
    Arc::new(CursorShape {
        unique: 0,
        kind: CursorShape::ALPHA,
        width: w,
        height: w,
        hot_x: 1,
        hot_y: 2,
        data: vec![0x7f; usize::from(w) * usize::from(w) * 4],
    })
}

#[test]
fn cursor_init_comes_first_then_latest_values_only() {
    let canvas = canvas();
    *canvas.cursor.lock().unwrap() = CursorState {
        shape: Some(shape(8)),
        position: Point { x: 5, y: 6 },
        visible: true,
        generation: 3,
    };
    let mut out = outbox();
    let mut cursor = CursorChannel::new(canvas.clone(), &mut out);
    let msgs = sent(&mut out);
    assert_eq!(msgs.len(), 2, "SET_ACK, INIT");
    assert_eq!(msgs[1].0, CursorMsg::INIT.0);
    let init = MsgCursorInit::read_bytes(&msgs[1].1).unwrap();
    assert!(init.visible);
    assert!(
        matches!(init.cursor, crate::spice::wire::Cursor::Shape { header, .. } if header.width == 8)
    );

    // A new shape and two moves while the client waits: one SET at the last position.
    let s = shape(16);
    cursor.handle_event(&DisplayEvent::Cursor(CursorEvent::Set {
        position: Point { x: 1, y: 1 },
        visible: true,
        shape: s,
        generation: 4,
    }));
    for (x, g) in [(10, 5), (20, 6)] {
        cursor.handle_event(&DisplayEvent::Cursor(CursorEvent::Move {
            position: Point { x, y: 3 },
            generation: g,
        }));
    }
    assert!(!cursor.poll_transmit(&mut out));
    let msgs = sent(&mut out);
    assert_eq!(msgs.len(), 1);
    let set = MsgCursorSet::read_bytes(&msgs[0].1).unwrap();
    assert_eq!((set.position.x, set.position.y), (20, 3));

    cursor.handle_event(&DisplayEvent::Cursor(CursorEvent::Hide { generation: 7 }));
    cursor.poll_transmit(&mut out);
    assert_eq!(sent(&mut out)[0].0, CursorMsg::HIDE.0);
    cursor.handle_event(&DisplayEvent::Cursor(CursorEvent::Move {
        position: Point { x: 2, y: 2 },
        generation: 8,
    }));
    cursor.poll_transmit(&mut out);
    assert_eq!(sent(&mut out)[0].0, CursorMsg::MOVE.0);

    // After a reset the client needs INIT before anything else.
    cursor.handle_event(&DisplayEvent::Cursor(CursorEvent::Reset { generation: 9 }));
    cursor.poll_transmit(&mut out);
    let types: Vec<u16> = sent(&mut out).iter().map(|m| m.0).collect();
    assert_eq!(types, [CursorMsg::RESET.0, CursorMsg::INIT.0]);
    cursor.poll_transmit(&mut out);
    assert!(sent(&mut out).is_empty());
}

#[derive(Default)]
struct Sink {
    events: Mutex<Vec<InputEvent>>,
    released: Mutex<Vec<InputClientId>>,
}

impl InputSink for Sink {
    fn input(&self, _: InputClientId, event: InputEvent) {
        self.events.lock().unwrap().push(event);
    }
    fn release_all_from(&self, client: InputClientId) {
        self.released.lock().unwrap().push(client);
    }
    fn guest_modifiers(&self) -> tokio::sync::watch::Receiver<u16> {
        tokio::sync::watch::channel(0).1
    }
}

#[test]
fn inputs_ack_every_fourth_motion_and_clamp_relative_motion() {
    let sink = Arc::new(Sink::default());
    let mut out = outbox();
    let client = InputClient::new(sink.clone(), InputClientId(7));
    let session = Sessions::new(4, InputPolicy::All).create().unwrap();
    let mut inputs = InputsChannel::new(client, canvas(), session, 2, &mut out);
    let init = sent(&mut out);
    assert_eq!(init, [(InputsMsg::INIT.0, vec![2, 0])]);
    let now = Instant::now();
    let motion = |dx, dy| MsgcInputsMouseMotion {
        dx,
        dy,
        buttons_state: ButtonsState::NONE,
    };
    for (dx, dy) in [(30, 10), (30, 10), (500, -500), (-20, 5)] {
        inputs
            .handle_message(
                InputsMsgc::MOUSE_MOTION.0,
                &body(&motion(dx, dy)),
                now,
                &mut out,
            )
            .unwrap();
    }
    assert_eq!(sent(&mut out), [(InputsMsg::MOUSE_MOTION_ACK.0, vec![])]);
    let positions: Vec<_> = sink
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            InputEvent::PointerPosition { x, y } => Some((*x, *y)),
            _ => None,
        })
        .collect();
    // The canvas is 100 × 50: motion stops at its edges.
    assert_eq!(positions, [(30, 10), (60, 20), (99, 0), (79, 5)]);

    sink.events.lock().unwrap().clear();
    let pos = MsgcInputsMousePosition {
        x: 40,
        y: 30,
        buttons_state: ButtonsState::NONE,
        display_id: 0,
    };
    inputs
        .handle_message(InputsMsgc::MOUSE_POSITION.0, &body(&pos), now, &mut out)
        .unwrap();
    let press = MsgcInputsMousePress {
        button: MouseButton::RIGHT,
        buttons_state: ButtonsState::RIGHT,
    };
    inputs
        .handle_message(InputsMsgc::MOUSE_PRESS.0, &body(&press), now, &mut out)
        .unwrap();
    let wheel = MsgcInputsMousePress {
        button: MouseButton::DOWN,
        buttons_state: ButtonsState(ButtonsState::RIGHT.0 | ButtonsState::DOWN.0),
    };
    inputs
        .handle_message(InputsMsgc::MOUSE_PRESS.0, &body(&wheel), now, &mut out)
        .unwrap();
    let release = MsgcInputsMouseRelease {
        button: MouseButton::RIGHT,
        buttons_state: ButtonsState::NONE,
    };
    inputs
        .handle_message(InputsMsgc::MOUSE_RELEASE.0, &body(&release), now, &mut out)
        .unwrap();
    inputs
        .handle_message(
            InputsMsgc::KEY_DOWN.0,
            &0x48e0u32.to_le_bytes(),
            now,
            &mut out,
        )
        .unwrap();
    inputs
        .handle_message(
            InputsMsgc::KEY_UP.0,
            &0xc8e0u32.to_le_bytes(),
            now,
            &mut out,
        )
        .unwrap();
    inputs
        .handle_message(
            InputsMsgc::KEY_MODIFIERS.0,
            &4u16.to_le_bytes(),
            now,
            &mut out,
        )
        .unwrap();
    assert_eq!(
        *sink.events.lock().unwrap(),
        [
            InputEvent::PointerPosition { x: 40, y: 30 },
            InputEvent::Buttons { mask: 4 },
            InputEvent::Wheel {
                vertical: 1,
                horizontal: 0
            },
            InputEvent::Buttons { mask: 0 },
            InputEvent::Key {
                scancode: 0x148,
                pressed: true
            },
            InputEvent::Key {
                scancode: 0x148,
                pressed: false
            },
            InputEvent::LockModifiers { modifiers: 4 },
        ]
    );
    inputs.handle_guest_modifiers(1, &mut out);
    assert_eq!(sent(&mut out), [(InputsMsg::KEY_MODIFIERS.0, vec![1, 0])]);
    drop(inputs);
    assert_eq!(*sink.released.lock().unwrap(), [InputClientId(7)]);
}

fn session() -> Arc<crate::spice::session::Session> {
    Sessions::new(4, InputPolicy::All).create().unwrap()
}

#[test]
fn inputs_policy_drops_viewers_events_but_acks_their_motion() {
    let sink = Arc::new(Sink::default());
    let sessions = Sessions::new(4, InputPolicy::First);
    let first = sessions.create().unwrap();
    let viewer = sessions.create().unwrap();
    let mut out = outbox();
    let mut inputs = InputsChannel::new(
        InputClient::new(sink.clone(), InputClientId(2)),
        canvas(),
        Arc::clone(&viewer),
        0,
        &mut out,
    );
    sent(&mut out);
    let now = Instant::now();
    let pos = |x| MsgcInputsMousePosition {
        x,
        y: 1,
        buttons_state: ButtonsState::NONE,
        display_id: 0,
    };
    for x in 0..4 {
        inputs
            .handle_message(InputsMsgc::MOUSE_POSITION.0, &body(&pos(x)), now, &mut out)
            .unwrap();
    }
    assert_eq!(sent(&mut out), [(InputsMsg::MOUSE_MOTION_ACK.0, vec![])]);
    assert!(sink.events.lock().unwrap().is_empty(), "a viewer's input");

    // The first client leaves: the viewer is now the longest connected and may type.
    sessions.remove(first.id());
    inputs
        .handle_message(InputsMsgc::MOUSE_POSITION.0, &body(&pos(9)), now, &mut out)
        .unwrap();
    assert_eq!(
        *sink.events.lock().unwrap(),
        [
            InputEvent::PointerPosition { x: 9, y: 1 },
            InputEvent::Buttons { mask: 0 }
        ]
    );
}

#[test]
fn display_waits_for_init_then_times_out() {
    let now = Instant::now();
    let mut out = outbox();
    let config = PipeConfig {
        budget: 1 << 20,
        lz4: false,
        quic: false,
        monitors_config: true,
    };
    let mut display = DisplayChannel::new(canvas(), config, session(), now, &mut out);
    assert_eq!(sent(&mut out).len(), 1, "SET_ACK only");
    assert!(!display.poll_transmit(&mut out));
    assert!(sent(&mut out).is_empty(), "nothing before INIT");
    let deadline = display.deadline().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(30));
    display
        .handle_timeout(now + Duration::from_secs(29))
        .unwrap();
    assert!(matches!(
        display.handle_timeout(deadline),
        Err(ChannelError::InitTimeout(_))
    ));

    let mut display = DisplayChannel::new(canvas(), config, session(), now, &mut out);
    sent(&mut out);
    let init = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    display
        .handle_message(DisplayMsgc::INIT.0, &init, now, &mut out)
        .unwrap();
    assert_eq!(display.deadline(), None);
    display.poll_transmit(&mut out);
    let types: Vec<u16> = sent(&mut out).iter().map(|m| m.0).collect();
    assert_eq!(types, [314, 304, 317, 102], "create, image, monitors, mark");
    assert!(display
        .handle_message(DisplayMsgc::PREFERRED_COMPRESSION.0, &[7], now, &mut out)
        .is_err());
}
